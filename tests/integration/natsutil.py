"""
tests/integration/natsutil.py — real nats-server processes for the cluster tests: one server,
or three as a JetStream cluster, on ephemeral loopback ports with temporary store dirs.

NatsCluster(n).start() waits until JetStream is usable (the meta leader is elected, read from
each server's monitoring port /jsz), never for a fixed time; a server that could not bind a port
another test took meanwhile makes it start them all again on fresh ports. Servers can be stopped (SIGTERM
or SIGKILL), paused (SIGSTOP) and started again on the same ports and store dirs. cleanup()
kills them all and removes their dirs. Also: a tiny raw NATS client (publish_raw) that
publishes with a Nats-Msg-Id header, to put a retried or a hostile message on the stream.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from harness import free_port, scaled, wait_until

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"


class NatsServer:
    def __init__(self, name, root, extra_conf=""):
        self.name = name
        self.extra_conf = extra_conf  # more nats-server configuration (authorization, tls) for this server
        self.new_ports()
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "js"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nats.conf")
        self.proc = None
        self.log = os.path.join(self.dir, "log")

    def new_ports(self):
        self.port = free_port()
        self.http_port = free_port()
        self.cluster_port = free_port()

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def write_conf(self, peers):
        lines = ["server_name: %s" % self.name, "listen: 127.0.0.1:%d" % self.port,
                 "http: 127.0.0.1:%d" % self.http_port,
                 "jetstream { store_dir: %s, max_memory_store: 64MB, max_file_store: 1GB }" % json.dumps(
                     os.path.join(self.dir, "js"))]
        if peers:
            routes = ", ".join("nats-route://127.0.0.1:%d" % p.cluster_port for p in peers if p is not self)
            lines.append("cluster { name: edgecache_test, listen: 127.0.0.1:%d, routes: [%s] }" % (
                self.cluster_port, routes))
        if self.extra_conf:
            lines.append(self.extra_conf)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def jsz(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/jsz" % self.http_port, timeout=2) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None


class NatsServerDied(AssertionError):
    """A nats-server that should be running has exited."""


class NatsCluster:
    """n nats-server processes with JetStream; n > 1: one cluster (routes between all)."""

    def __init__(self, n=3, extra_conf=""):
        self.root = tempfile.mkdtemp(prefix="edgecache-nats-")
        self.servers = [NatsServer("n%d" % (i + 1), self.root, extra_conf) for i in range(n)]
        for s in self.servers:
            s.write_conf(self.servers if n > 1 else None)

    @property
    def urls(self):
        return ",".join(s.url for s in self.servers)

    def start(self, attempts=3):
        """Start every server and wait until JetStream is usable. A port that free_port() gave
        may be taken by another test before nats-server binds it (it then exits: "address
        already in use"): then every server gets fresh ports and empty store dirs, and all start
        again, up to `attempts` times. When it fails, it kills what it started."""
        for attempt in range(attempts):
            for s in self.servers:
                s.start()
            try:
                self.wait_ready(self.servers)
                return self
            except NatsServerDied:
                if attempt == attempts - 1:
                    self.cleanup()
                    raise
            except BaseException:
                self.cleanup()  # the caller gets no cluster to clean up (setUpClass failed: no tearDownClass)
                raise
            for s in self.servers:
                s.stop(signal.SIGKILL)
                s.new_ports()
                shutil.rmtree(os.path.join(s.dir, "js"), ignore_errors=True)
                os.makedirs(os.path.join(s.dir, "js"))
            for s in self.servers:
                s.write_conf(self.servers if len(self.servers) > 1 else None)
        return self

    def _has_leader(self, s):
        if not s.running:
            with open(s.log, "rb") as f:
                tail = f.read()[-600:].decode("utf-8", "replace")
            raise NatsServerDied("nats-server %s exited:\n%s" % (s.name, tail))
        j = s.jsz()
        if j is None:
            return False
        if len(self.servers) == 1:
            return True
        meta = j.get("meta_cluster") or {}
        return bool(meta.get("leader"))

    def wait_ready(self, servers=None):
        """Every running server (or those given) answers /jsz and knows a meta leader."""
        for s in servers or [s for s in self.servers if s.running]:
            wait_until(lambda s=s: self._has_leader(s), timeout=30, what="JetStream meta leader on %s" % s.name)

    def cleanup(self):
        for s in self.servers:
            try:
                s.stop(signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def publish_raw(port, subject, payload, msg_id=None, timeout=5.0):
    """Publish one message over the NATS text protocol (HPUB with a Nats-Msg-Id header when
    msg_id is given) with a reply inbox; returns the JetStream publish acknowledgement (a dict).
    With a msg_id, a publish left unanswered for 10 s is sent again with the same id until
    `timeout` (as JetStream clients do: a stream whose leader is being elected drops a
    publish without a word, and the duplicates window keeps a resent one from being stored
    twice)."""
    if msg_id is None:
        return _publish_once(port, subject, payload, None, scaled(timeout))
    deadline = time.monotonic() + scaled(timeout)
    while True:
        left = deadline - time.monotonic()
        try:
            return _publish_once(port, subject, payload, msg_id, min(scaled(10), max(left, 0.1)))
        except socket.timeout:
            if time.monotonic() >= deadline:
                raise


def _connect(port, inbox, timeout, no_responders):
    """A text-protocol connection subscribed to inbox: (socket, its reader)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        f.readline()  # INFO
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true%s}\r\n' %
                  (b',"no_responders":true' if no_responders else b""))
        s.sendall(("SUB %s 1\r\n" % inbox).encode())
    except BaseException:
        s.close()
        raise
    return s, f


def _first_reply(s, f):
    """The first message the connection receives: (its headers, its body) as bytes."""
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif line.startswith(b"MSG") or line.startswith(b"HMSG"):
            parts = line.split()
            total = int(parts[-1])
            data = f.read(total + 2)[:total]
            hdr_len = int(parts[-2]) if line.startswith(b"HMSG") else 0
            return data[:hdr_len], data[hdr_len:]


def _publish_once(port, subject, payload, msg_id, timeout):
    inbox = "_INBOX.edgecache_test_%d" % os.getpid()
    s, f = _connect(port, inbox, timeout, True)
    try:
        if msg_id is not None:
            hdr = ("NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id).encode()
            s.sendall(("HPUB %s %s %d %d\r\n" % (subject, inbox, len(hdr), len(hdr) + len(payload))).encode() + hdr +
                      payload + b"\r\n")
        else:
            s.sendall(("PUB %s %s %d\r\n" % (subject, inbox, len(payload))).encode() + payload + b"\r\n")
        s.sendall(b"PING\r\n")
        _, data = _first_reply(s, f)
        return json.loads(data) if data else {}
    finally:
        s.close()


def pull_one(port, stream, durable, timeout=5.0):
    """Pull one message from a JetStream pull consumer over the text protocol, and do not
    acknowledge it. Returns the open socket (closing it does not acknowledge either): the
    message stays pending on the consumer until its ack wait passes."""
    inbox = "_INBOX.edgecache_pull_%d" % os.getpid()
    s, f = _connect(port, inbox, scaled(timeout), False)
    try:
        body = b'{"batch":1}'
        s.sendall(("PUB $JS.API.CONSUMER.MSG.NEXT.%s.%s %s %d\r\n" % (stream, durable, inbox, len(body))).encode() +
                  body + b"\r\n")
        hdr, data = _first_reply(s, f)
        if hdr and not data:
            raise AssertionError("pull answered with a status, not a message: %r" % hdr[:200])
        return s
    except BaseException:
        s.close()
        raise


def publish_core(port, messages, timeout=5.0):
    """Publish [(subject, payload)] on core NATS (no reply expected), in order on one connection;
    returns once the server has read them all (its PONG to the PING sent after them)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout))
    try:
        f = s.makefile("rb")
        f.readline()  # INFO
        out = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
        for subject, payload in messages:
            out += ("PUB %s %d\r\n" % (subject, len(payload))).encode() + payload + b"\r\n"
        s.sendall(out + b"PING\r\n")
        while True:
            line = f.readline()
            if not line or line.startswith(b"-ERR"):
                raise OSError("nats: %r" % line)
            if line.startswith(b"PONG"):
                return
    finally:
        s.close()


NKEY_PREFIX = {"operator": 14 << 3, "account": 0, "user": 20 << 3}


def _crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _b32(raw):
    import base64
    return base64.b32encode(raw + _crc16(raw).to_bytes(2, "little")).decode().rstrip("=")


def nkey(kind="user"):
    """A fresh NATS NKey of `kind`: (seed "S..", public key, Ed25519 private key), made as the
    nkeys library does (Ed25519; base32 of prefix bytes, key and CRC16)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = os.urandom(32)
    key = Ed25519PrivateKey.from_private_bytes(raw)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    p = NKEY_PREFIX[kind]
    return _b32(bytes([(18 << 3) | (p >> 5), (p & 31) << 3]) + raw), _b32(bytes([p]) + pub), key


def user_nkey():
    """A fresh user NKey: (seed "SU...", public key "U...")."""
    seed, pub, _ = nkey("user")
    return seed, pub


def jwt(claims, signer_pub, signer_key):
    """A NATS JWT (ed25519-nkey) of claims, issued by signer."""
    import base64
    import hashlib

    def enc(b):
        return base64.urlsafe_b64encode(b).decode().rstrip("=")

    claims = dict(claims, iss=signer_pub, iat=int(time.time()))
    body = json.dumps(claims, separators=(",", ":")).encode()
    claims["jti"] = base64.b32encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    head = enc(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode()) + "." + enc(
        json.dumps(claims, separators=(",", ":")).encode())
    return head + "." + enc(signer_key.sign(head.encode()))


def operator_setup(directory):
    """Decentralized auth: an operator, one account with JetStream, one user. Returns (the
    nats-server configuration lines, the path of the user's .creds file)."""
    _, op_pub, op_key = nkey("operator")
    _, acc_pub, acc_key = nkey("account")
    u_seed, u_pub, _ = nkey("user")
    op_jwt = jwt({"sub": op_pub, "name": "op", "nats": {"type": "operator", "version": 2}}, op_pub, op_key)
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1,
                 "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
    acc_jwt = jwt({"sub": acc_pub, "name": "edge", "nats": {"type": "account", "version": 2, "limits": unlimited}},
                  op_pub, op_key)
    u_jwt = jwt({"sub": u_pub, "name": "edge1", "nats": {"type": "user", "version": 2, "pub": {}, "sub": {},
                                                         "subs": -1, "data": -1, "payload": -1}}, acc_pub, acc_key)
    creds = os.path.join(directory, "edge1.creds")
    with open(creds, "w") as f:
        f.write("-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"
                "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n" % (u_jwt, u_seed))
    _, sys_pub, _ = nkey("account")  # JetStream wants a system account
    sys_jwt = jwt({"sub": sys_pub, "name": "SYS", "nats": {"type": "account", "version": 2}}, op_pub, op_key)
    conf = "operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: { %s: %s, %s: %s }" % (
        op_jwt, sys_pub, acc_pub, acc_jwt, sys_pub, sys_jwt)
    return conf, creds


def encode_purge(kind, items, soft=False):
    """The bus format of cluster/cluster_msg.h: kind 'key'|'keys'|'url'|'all'; items [(id, key bytes)]."""
    code = {"key": 1, "keys": 2, "url": 3, "all": 4}[kind]
    out = b"ECP1" + bytes([code, 1 if soft else 0]) + len(items).to_bytes(2, "big")
    for pid, key in items:
        pid = pid.encode()
        out += bytes([len(pid)]) + pid + len(key).to_bytes(4, "big") + key
    return out
