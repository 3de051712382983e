<?php
/**
 * EdgecachePurge.php — purge client for edgecache's Fastly-compatible admin API.
 *
 * Standard library only (PHP streams and json, PHP >= 7.4); drop this one file into any project:
 *
 *     require __DIR__ . '/EdgecachePurge.php';
 *     $purge = new EdgecachePurge\Client();  // EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN
 *     $purge->purgeKey('product-42');                            // "node-1700000000-17"
 *     $purge->purgeUrl('https://shop.example/p/42', true);       // soft purge
 *     $purge->purgeKeys(['product-42', 'category-7']);           // ['product-42' => '...', ...]
 *     $purge->purgeAll();                                        // true
 *
 * Every failure (HTTP 4xx/5xx, an unexpected answer, a refused connection, a timeout)
 * throws EdgecachePurge\PurgeException (a RuntimeException) carrying getStatus() (int, null
 * when no HTTP answer came) and getServerMessage() (the server's "msg"). Nothing is reported
 * as success unless the server answered 2xx with the JSON the API promises.
 *
 * HTTP is spoken over stream_socket_client() so that the connect timeout and the read
 * timeout are separate (PHP's http:// wrapper has only one); no HTTP proxy is used.
 */

namespace EdgecachePurge;

/** A failed purge. getCode() is the HTTP status too (0 when there was no HTTP answer). */
class PurgeException extends \RuntimeException
{
    private $status;
    private $serverMessage;
    private $detail;

    public function __construct(?int $status, string $serverMessage, ?string $detail = null)
    {
        $this->status = $status;
        $this->serverMessage = $serverMessage;
        $this->detail = $detail;
        $text = $status === null
            ? "edgecache purge failed: $serverMessage"
            : "edgecache purge failed: HTTP $status: $serverMessage";
        if ($detail !== null && $detail !== '') {
            $text .= " ($detail)";
        }
        parent::__construct($text, $status ?? 0);
    }

    /** The HTTP status, or null for network errors and timeouts. */
    public function getStatus(): ?int
    {
        return $this->status;
    }

    /** The server's "msg" (or a description of the local failure). */
    public function getServerMessage(): string
    {
        return $this->serverMessage;
    }

    /** The server's "detail", when it sent one. */
    public function getDetail(): ?string
    {
        return $this->detail;
    }
}

/** The purge client. It holds only configuration and opens one connection per call. */
class Client
{
    public const VERSION = '1.0.0';
    /** The batch endpoint takes at most this many keys; purgeKeys() splits longer lists. */
    public const MAX_KEYS_PER_REQUEST = 256;
    /** Answers larger than this are refused (the API's answers are small). */
    private const MAX_RESPONSE_BYTES = 4 << 20;

    private $url;
    private $service;
    private $token;
    private $connectTimeout;
    private $readTimeout;
    private $scheme;
    private $host;
    private $port;
    private $basePath;

    /**
     * @param string|null $url     admin API base URL, e.g. "http://127.0.0.1:8081" (default $EDGECACHE_URL)
     * @param string|null $service service id (default $EDGECACHE_SERVICE, else "edgecache")
     * @param string|null $token   API token sent as Fastly-Key (default $EDGECACHE_TOKEN)
     * @param float $connectTimeout seconds for the TCP connect and TLS handshake (default 5)
     * @param float $readTimeout    seconds each socket read or write may wait (default 5)
     * @throws \InvalidArgumentException when the URL or token is missing or malformed
     */
    public function __construct(
        ?string $url = null,
        ?string $service = null,
        ?string $token = null,
        float $connectTimeout = 5.0,
        float $readTimeout = 5.0
    ) {
        $url = self::presence($url) ?? self::presence(getenv('EDGECACHE_URL'));
        $service = self::presence($service) ?? self::presence(getenv('EDGECACHE_SERVICE')) ?? 'edgecache';
        $token = self::presence($token) ?? self::presence(getenv('EDGECACHE_TOKEN'));
        if ($url === null) {
            throw new \InvalidArgumentException('edgecache admin URL missing: pass $url or set EDGECACHE_URL');
        }
        if ($token === null) {
            throw new \InvalidArgumentException('edgecache token missing: pass $token or set EDGECACHE_TOKEN');
        }
        if (preg_match('/[\s\x00-\x1f\x7f]/', $token)) {
            throw new \InvalidArgumentException('token contains whitespace or control characters');
        }
        if ($connectTimeout <= 0 || $readTimeout <= 0) {
            throw new \InvalidArgumentException('timeouts must be positive numbers of seconds');
        }
        $parts = parse_url(rtrim($url, '/'));
        $parts = is_array($parts) ? $parts : [];
        $scheme = strtolower($parts['scheme'] ?? '');
        if (($scheme !== 'http' && $scheme !== 'https') || ($parts['host'] ?? '') === ''
            || preg_match('/[\s\x00-\x1f\x7f]/', $url)) {
            throw new \InvalidArgumentException("edgecache admin URL must be http:// or https://, got \"$url\"");
        }
        $this->scheme = $scheme;
        $this->host = $parts['host'];
        $this->port = $parts['port'] ?? ($scheme === 'https' ? 443 : 80);
        $this->basePath = $parts['path'] ?? '';
        $this->url = rtrim($url, '/');
        $this->service = $service;
        $this->token = $token;
        $this->connectTimeout = $connectTimeout;
        $this->readTimeout = $readTimeout;
    }

    public function getUrl(): string
    {
        return $this->url;
    }

    public function getService(): string
    {
        return $this->service;
    }

    /** Purge one URL (every variant). Returns the purge id. */
    public function purgeUrl(string $url, bool $soft = false): string
    {
        return self::singleId($this->post(self::urlPurgePath($url), $soft));
    }

    /** Purge every object tagged with surrogate key $key. Returns the purge id. */
    public function purgeKey(string $key, bool $soft = false): string
    {
        self::checkKey($key);
        return self::singleId($this->post($this->servicePath() . '/purge/' . rawurlencode($key), $soft));
    }

    /**
     * Purge several surrogate keys through the batch endpoint, MAX_KEYS_PER_REQUEST per
     * request (longer lists are split; if a later request fails, the earlier ones have
     * already purged). Returns an array key => purge id.
     *
     * @param string[] $keys
     * @return array<string,string>
     */
    public function purgeKeys(array $keys, bool $soft = false): array
    {
        $unique = [];
        foreach ($keys as $key) {
            self::checkKey($key);
            $unique[$key] = true;
        }
        $unique = array_map('strval', array_keys($unique));
        $result = [];
        foreach (array_chunk($unique, self::MAX_KEYS_PER_REQUEST) as $chunk) {
            [$status, $body] = $this->post($this->servicePath() . '/purge', $soft, ['surrogate_keys' => $chunk]);
            if (!($body instanceof \stdClass)) {
                throw new PurgeException($status, 'unexpected response to batch purge: ' . self::show($body));
            }
            foreach (get_object_vars($body) as $k => $id) {
                if (!is_string($id)) {
                    throw new PurgeException($status, 'unexpected response to batch purge: ' . self::show($body));
                }
                $result[(string)$k] = $id;
            }
        }
        return $result;
    }

    /** Purge everything in the service (never soft). Returns true. */
    public function purgeAll(): bool
    {
        [$status, $body] = $this->post($this->servicePath() . '/purge_all', false);
        if (!($body instanceof \stdClass) || ($body->status ?? null) !== 'ok') {
            throw new PurgeException($status, 'unexpected response to purgeAll: ' . self::show($body));
        }
        return true;
    }

    /**
     * The admin path that purges $url: the scheme and fragment are dropped and the host
     * lower-cased ("https://Example.com/a/b?x" => "/purge/example.com/a/b?x"); bytes that
     * may not appear in a URL are percent-encoded, existing %XX escapes are kept.
     */
    public static function urlPurgePath(string $url): string
    {
        $rest = explode('#', trim($url), 2)[0];
        $rest = preg_replace('~\A[A-Za-z][A-Za-z0-9+.\-]*://~', '', $rest);
        if (strncmp($rest, '//', 2) === 0) {
            $rest = substr($rest, 2);
        }
        $cut = strcspn($rest, '/?');
        $host = strtolower(substr($rest, 0, $cut));
        $tail = (string)substr($rest, $cut);
        $at = strrpos($host, '@');
        if ($at !== false) {
            $host = substr($host, $at + 1);
        }
        if ($host === '' || preg_match('/[\s\x00-\x1f\x7f]/', $host)) {
            throw new \InvalidArgumentException("url must include a host, got \"$url\"");
        }
        if ($tail === '' || $tail[0] !== '/') {
            $tail = '/' . $tail;
        }
        $tail = preg_replace_callback(
            '~[^A-Za-z0-9\-._\~:/?\[\]@!$&\'()*+,;=%]~',
            function ($m) {
                return sprintf('%%%02X', ord($m[0]));
            },
            $tail
        );
        return '/purge/' . $host . $tail;
    }

    private function servicePath(): string
    {
        return '/service/' . rawurlencode($this->service);
    }

    private static function presence($value): ?string
    {
        return ($value === null || $value === false || $value === '') ? null : (string)$value;
    }

    private static function checkKey($key): void
    {
        if (!is_string($key) || $key === '' || preg_match('/[\s\x00-\x1f\x7f]/', $key)) {
            throw new \InvalidArgumentException('surrogate key must be a non-empty string without whitespace, got '
                . var_export($key, true));
        }
    }

    private static function singleId(array $answer): string
    {
        [$status, $body] = $answer;
        $id = $body instanceof \stdClass ? ($body->id ?? null) : null;
        if (!is_string($id) || $id === '') {
            throw new PurgeException($status, 'unexpected response (no purge id): ' . self::show($body));
        }
        return $id;
    }

    private static function show($value): string
    {
        return substr((string)json_encode($value), 0, 200);
    }

    /**
     * POST to the admin API. Returns [status, decoded JSON] for a 2xx JSON answer and
     * throws PurgeException for everything else.
     */
    private function post(string $path, bool $soft, ?array $payload = null): array
    {
        $body = $payload === null ? '' : json_encode($payload, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        $hostHeader = $this->host;
        if (($this->scheme === 'http' && $this->port != 80) || ($this->scheme === 'https' && $this->port != 443)) {
            $hostHeader .= ':' . $this->port;
        }
        $lines = [
            'POST ' . $this->basePath . $path . ' HTTP/1.1',
            'Host: ' . $hostHeader,
            'Fastly-Key: ' . $this->token,
            'Accept: application/json',
            'User-Agent: edgecache-purge-php/' . self::VERSION,
            'Connection: close',
            'Content-Length: ' . strlen($body),
        ];
        if ($payload !== null) {
            $lines[] = 'Content-Type: application/json';
        }
        if ($soft) {
            $lines[] = 'Fastly-Soft-Purge: 1';
        }
        $request = implode("\r\n", $lines) . "\r\n\r\n" . $body;
        $where = "POST {$this->url}{$path}";

        [$status, $reason, $raw] = $this->exchange($request, $where);
        $json = self::parseJson($raw);
        if ($status < 200 || $status > 299) {
            $isObject = $json instanceof \stdClass;
            $msg = $isObject && is_string($json->msg ?? null) ? $json->msg : null;
            $detail = $isObject && is_string($json->detail ?? null) ? $json->detail : null;
            if ($msg === null) {
                $msg = substr(trim($raw), 0, 200);
                $msg = $msg !== '' ? $msg : $reason;
            }
            throw new PurgeException($status, $msg, $detail);
        }
        if ($json === null) {
            throw new PurgeException($status, 'response is not JSON: ' . substr($raw, 0, 200));
        }
        return [$status, $json];
    }

    /** Send one request on a fresh connection; returns [status, reason phrase, body]. */
    private function exchange(string $request, string $where): array
    {
        $transport = $this->scheme === 'https' ? 'ssl' : 'tcp';
        $context = stream_context_create(['ssl' => [
            'verify_peer' => true,
            'verify_peer_name' => true,
            'SNI_enabled' => true,
            'peer_name' => trim($this->host, '[]'),
        ]]);
        $errno = 0;
        $errstr = '';
        $socket = @stream_socket_client(
            "$transport://{$this->host}:{$this->port}",
            $errno,
            $errstr,
            $this->connectTimeout,
            STREAM_CLIENT_CONNECT,
            $context
        );
        if ($socket === false) {
            $errstr = $errstr !== '' ? $errstr : 'connection failed';
            throw new PurgeException(null, "$where: could not connect to {$this->host}:{$this->port}: $errstr");
        }
        try {
            $seconds = (int)floor($this->readTimeout);
            stream_set_timeout($socket, $seconds, (int)(($this->readTimeout - $seconds) * 1e6));
            for ($sent = 0; $sent < strlen($request); $sent += $n) {
                $n = @fwrite($socket, substr($request, $sent));
                if ($n === false || $n === 0) {
                    $timedOut = stream_get_meta_data($socket)['timed_out'];
                    throw new PurgeException(null, "$where: " . ($timedOut ? 'write timed out' : 'write failed'));
                }
            }
            $raw = '';
            while (!feof($socket)) {
                $chunk = @fread($socket, 65536);
                if (stream_get_meta_data($socket)['timed_out']) {
                    throw new PurgeException(null, "$where: read timed out after {$this->readTimeout} s");
                }
                if ($chunk === false) {
                    throw new PurgeException(null, "$where: read failed");
                }
                $raw .= $chunk;
                if (strlen($raw) > self::MAX_RESPONSE_BYTES) {
                    throw new PurgeException(null, "$where: response too large");
                }
            }
        } finally {
            fclose($socket);
        }
        return self::parseResponse($raw, $where);
    }

    /** Split a raw HTTP/1.x response into [status, reason, body], skipping 1xx answers. */
    private static function parseResponse(string $raw, string $where): array
    {
        while (true) {
            $end = strpos($raw, "\r\n\r\n");
            if ($end === false
                || !preg_match('~\AHTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?\r\n~', $raw, $m)) {
                throw new PurgeException(null, "$where: malformed or truncated HTTP response");
            }
            $status = (int)$m[1];
            $head = substr($raw, 0, $end);
            $raw = (string)substr($raw, $end + 4);
            if ($status >= 100 && $status < 200) {
                continue;
            }
            break;
        }
        $headers = [];
        foreach (array_slice(explode("\r\n", $head), 1) as $line) {
            $colon = strpos($line, ':');
            if ($colon !== false) {
                $headers[strtolower(trim(substr($line, 0, $colon)))] = trim(substr($line, $colon + 1));
            }
        }
        if (stripos($headers['transfer-encoding'] ?? '', 'chunked') !== false) {
            $raw = self::dechunk($raw, $where);
        } elseif (isset($headers['content-length'])) {
            $length = $headers['content-length'];
            if (!ctype_digit($length) || strlen($raw) < (int)$length) {
                throw new PurgeException(null, "$where: truncated HTTP response body");
            }
            $raw = substr($raw, 0, (int)$length);
        }
        return [$status, $m[2] ?? '', $raw];
    }

    private static function dechunk(string $raw, string $where): string
    {
        $out = '';
        $pos = 0;
        while (true) {
            $eol = strpos($raw, "\r\n", $pos);
            if ($eol === false) {
                throw new PurgeException(null, "$where: truncated chunked response");
            }
            $sizeText = trim(explode(';', substr($raw, $pos, $eol - $pos), 2)[0]);
            if ($sizeText === '' || !ctype_xdigit($sizeText)) {
                throw new PurgeException(null, "$where: malformed chunked response");
            }
            $size = hexdec($sizeText);
            if ($size === 0) {
                return $out;
            }
            if ($eol + 2 + $size > strlen($raw)) {
                throw new PurgeException(null, "$where: truncated chunked response");
            }
            $out .= substr($raw, $eol + 2, $size);
            $pos = $eol + 2 + $size + 2;
        }
    }

    private static function parseJson(string $raw)
    {
        if ($raw === '') {
            return null;
        }
        $value = json_decode($raw);
        return json_last_error() === JSON_ERROR_NONE ? $value : null;
    }
}
