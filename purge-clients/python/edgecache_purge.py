"""Purge client for edgecache's Fastly-compatible admin API.

Standard library only (urllib, json); drop this one file into any project::

    from edgecache_purge import Client, PurgeError
    purge = Client()   # EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN
    purge.purge_key("product-42")                           # -> "node-1700000000-17"
    purge.purge_url("https://shop.example/p/42", soft=True)
    purge.purge_keys(["product-42", "category-7"])          # -> {"product-42": "...", ...}
    purge.purge_all()                                       # -> True

Every failure (HTTP 4xx/5xx, an unexpected answer, a refused connection, a timeout)
raises PurgeError carrying ``status`` (int, None when no HTTP answer came) and ``msg``
(the server's "msg"). Nothing is reported as success unless the server answered 2xx
with the JSON the API promises.
"""

import functools
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "PurgeError", "url_purge_path", "MAX_KEYS_PER_REQUEST"]
__version__ = "1.0.0"

#: The batch endpoint takes at most this many keys; purge_keys splits longer lists.
MAX_KEYS_PER_REQUEST = 256

_BAD_KEY = re.compile(r"[\s\x00-\x1f\x7f]")
_URL_SAFE = "-._~:/?[]@!$&'()*+,;=%"


class PurgeError(Exception):
    """A failed purge. ``status`` is the HTTP status (None for network errors and
    timeouts), ``msg`` the server's "msg" (or a description of the local failure),
    ``detail`` the server's "detail" when it sent one."""

    def __init__(self, status, msg, detail=None):
        self.status = status
        self.msg = msg
        self.detail = detail
        if status is None:
            text = "edgecache purge failed: %s" % msg
        else:
            text = "edgecache purge failed: HTTP %d: %s" % (status, msg)
        if detail:
            text += " (%s)" % detail
        super().__init__(text)


def url_purge_path(url):
    """The admin path that purges ``url``: the scheme and fragment are dropped and the
    host lower-cased ("https://Example.com/a/b?x" -> "/purge/example.com/a/b?x"); bytes
    that may not appear in a URL are percent-encoded, existing %XX escapes are kept."""
    if not isinstance(url, str):
        raise TypeError("url must be a str, got %r" % (url,))
    rest = url.strip().split("#", 1)[0]
    rest = re.sub(r"\A[A-Za-z][A-Za-z0-9+.\-]*://", "", rest)
    if rest.startswith("//"):
        rest = rest[2:]
    m = re.search(r"[/?]", rest)
    host, tail = (rest[: m.start()], rest[m.start():]) if m else (rest, "")
    host = host.rsplit("@", 1)[-1].lower()
    if not host or _BAD_KEY.search(host):
        raise ValueError("url must include a host, got %r" % (url,))
    if not tail.startswith("/"):
        tail = "/" + tail
    return "/purge/" + host + urllib.parse.quote(tail, safe=_URL_SAFE)


class _HTTPConnection(http.client.HTTPConnection):
    """Connects with the request's timeout (the connect timeout), then switches the
    socket to the read timeout for sending and receiving."""

    def __init__(self, *args, read_timeout, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self):
        super().connect()
        self.sock.settimeout(self._read_timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, read_timeout, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self):
        super().connect()  # TCP connect and TLS handshake, under the connect timeout
        self.sock.settimeout(self._read_timeout)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout):
        super().__init__()
        self._read_timeout = read_timeout

    def http_open(self, req):
        return self.do_open(functools.partial(_HTTPConnection, read_timeout=self._read_timeout), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout):
        super().__init__()
        self._read_timeout = read_timeout

    def https_open(self, req):
        return self.do_open(functools.partial(_HTTPSConnection, read_timeout=self._read_timeout),
                            req, context=self._context)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A purge is never re-sent elsewhere: a 3xx is reported as a failure."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    """The purge client. Thread-safe: it holds only configuration and opens one
    connection per call.

    url:      admin API base URL, e.g. "http://127.0.0.1:8081" (default $EDGECACHE_URL)
    service:  service id (default $EDGECACHE_SERVICE, else "edgecache")
    token:    API token sent as Fastly-Key (default $EDGECACHE_TOKEN)
    connect_timeout, read_timeout: seconds (default 5 each); the read timeout bounds each
              socket send or receive once connected.
    Raises ValueError when the URL or token is missing or malformed.
    """

    def __init__(self, url=None, service=None, token=None, *, connect_timeout=5.0, read_timeout=5.0):
        url = url or os.environ.get("EDGECACHE_URL") or None
        service = service or os.environ.get("EDGECACHE_SERVICE") or "edgecache"
        token = token or os.environ.get("EDGECACHE_TOKEN") or None
        if not url:
            raise ValueError("edgecache admin URL missing: pass url= or set EDGECACHE_URL")
        if not token:
            raise ValueError("edgecache token missing: pass token= or set EDGECACHE_TOKEN")
        if _BAD_KEY.search(token):
            raise ValueError("token contains whitespace or control characters")
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("edgecache admin URL must be http:// or https://, got %r" % (url,))
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.service = service
        self._token = token
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        self._opener = urllib.request.build_opener(
            _HTTPHandler(self.read_timeout), _HTTPSHandler(self.read_timeout), _NoRedirect())

    def __repr__(self):
        return "<edgecache_purge.Client url=%s service=%s>" % (self.url, self.service)

    def purge_url(self, url, *, soft=False):
        """Purge one URL (every variant). Returns the purge id (str)."""
        return self._single_id(self._post(url_purge_path(url), soft=soft))

    def purge_key(self, key, *, soft=False):
        """Purge every object tagged with surrogate key ``key``. Returns the purge id."""
        self._check_key(key)
        return self._single_id(self._post("%s/purge/%s" % (self._service_path(), _quote_segment(key)),
                                          soft=soft))

    def purge_keys(self, keys, *, soft=False):
        """Purge several surrogate keys through the batch endpoint, MAX_KEYS_PER_REQUEST
        per request (longer lists are split; if a later request fails, the earlier ones
        have already purged). Returns a dict key -> purge id."""
        if isinstance(keys, str):
            raise TypeError("purge_keys takes a list of keys; use purge_key for one key")
        unique = list(dict.fromkeys(keys))
        for key in unique:
            self._check_key(key)
        result = {}
        for i in range(0, len(unique), MAX_KEYS_PER_REQUEST):
            chunk = unique[i:i + MAX_KEYS_PER_REQUEST]
            status, body = self._post(self._service_path() + "/purge", soft=soft,
                                      payload={"surrogate_keys": chunk})
            if not (isinstance(body, dict)
                    and all(isinstance(k, str) and isinstance(v, str) for k, v in body.items())):
                raise PurgeError(status, "unexpected response to batch purge: %.200r" % (body,))
            result.update(body)
        return result

    def purge_all(self):
        """Purge everything in the service (never soft). Returns True."""
        status, body = self._post(self._service_path() + "/purge_all", soft=False)
        if not (isinstance(body, dict) and body.get("status") == "ok"):
            raise PurgeError(status, "unexpected response to purge_all: %.200r" % (body,))
        return True

    # -- internals --

    def _service_path(self):
        return "/service/" + _quote_segment(self.service)

    @staticmethod
    def _check_key(key):
        if not isinstance(key, str) or not key or _BAD_KEY.search(key):
            raise ValueError("surrogate key must be a non-empty str without whitespace, got %r" % (key,))

    @staticmethod
    def _single_id(answer):
        status, body = answer
        purge_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(purge_id, str) or not purge_id:
            raise PurgeError(status, "unexpected response (no purge id): %.200r" % (body,))
        return purge_id

    def _post(self, path, *, soft, payload=None):
        """POST to the admin API; returns (status, parsed JSON) for a 2xx JSON answer and
        raises PurgeError for everything else."""
        headers = {
            "Fastly-Key": self._token,
            "Accept": "application/json",
            "User-Agent": "edgecache-purge-python/" + __version__,
        }
        if soft:
            headers["Fastly-Soft-Purge"] = "1"
        data = b""
        if payload is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(payload).encode("utf-8")
        full_url = self.url + path
        request = urllib.request.Request(full_url, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.connect_timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            try:
                raw = e.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                e.close()
            body = _parse_json(raw)
            msg = body.get("msg") if isinstance(body, dict) else None
            detail = body.get("detail") if isinstance(body, dict) else None
            if not isinstance(msg, str):
                msg = raw.decode("utf-8", "replace").strip()[:200] or str(e.reason)
            raise PurgeError(e.code, msg, detail if isinstance(detail, str) else None) from None
        except urllib.error.URLError as e:
            raise PurgeError(None, "POST %s: %s" % (full_url, e.reason)) from None
        except (OSError, http.client.HTTPException) as e:  # timeouts, resets, bad status lines
            raise PurgeError(None, "POST %s: %s: %s" % (full_url, type(e).__name__, e)) from None
        if not 200 <= status <= 299:  # 1xx/3xx that urllib let through
            raise PurgeError(status, "unexpected HTTP status")
        body = _parse_json(raw)
        if body is None:
            raise PurgeError(status, "response is not JSON: %.200r" % (raw,))
        return status, body


def _quote_segment(text):
    return urllib.parse.quote(text, safe="-._~")


def _parse_json(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
