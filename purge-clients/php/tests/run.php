<?php
/**
 * Tests for EdgecachePurge.php — a plain PHP script (no PHPUnit needed): every function
 * named test_* runs; the last line is "php: N passed, N failed, N skipped"; exit 1 on failure.
 *
 * The live tests need a running edgecache in front of the test origin of tests/clients/run,
 * which exports EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN (global scope),
 * EDGECACHE_SELECT_TOKEN (purge_select scope), PROXY_URL and ORIGIN_URL; without them only
 * the offline tests run. The origin tags each path with the surrogate key
 * "path-with-slashes-as-dashes" and max-age=3600, and counts requests at /__count?path=...
 *
 *     php purge-clients/php/tests/run.php
 */

declare(strict_types=1);

require __DIR__ . '/../EdgecachePurge.php';

use EdgecachePurge\Client;
use EdgecachePurge\PurgeException;

const CLI = __DIR__ . '/../edgecache-purge';

final class SkipTest extends Exception
{
}

final class TestFailure extends Exception
{
}

// --- assertions ---------------------------------------------------------------------------

function check(bool $condition, string $what): void
{
    if (!$condition) {
        throw new TestFailure($what);
    }
}

function check_same($expected, $actual, string $what = ''): void
{
    if ($expected !== $actual) {
        throw new TestFailure(($what !== '' ? "$what: " : '') . 'expected ' . var_export($expected, true)
            . ', got ' . var_export($actual, true));
    }
}

/** Run $call, which must throw $class; returns the exception. */
function check_throws(string $class, callable $call, string $what = '')
{
    try {
        $call();
    } catch (Throwable $e) {
        if ($e instanceof $class) {
            return $e;
        }
        throw new TestFailure(($what !== '' ? "$what: " : '') . "expected $class, got " . get_class($e)
            . ': ' . $e->getMessage());
    }
    throw new TestFailure(($what !== '' ? "$what: " : '') . "expected $class, nothing was thrown");
}

// --- live helpers ---------------------------------------------------------------------------

function need_live(): void
{
    foreach (['EDGECACHE_URL', 'EDGECACHE_TOKEN', 'EDGECACHE_SELECT_TOKEN', 'PROXY_URL', 'ORIGIN_URL'] as $v) {
        if ((string)getenv($v) === '') {
            throw new SkipTest('no live edgecache (run tests/clients/run)');
        }
    }
}

function fresh_path(string $name): string
{
    return "/php/$name-" . bin2hex(random_bytes(6));
}

function key_for(string $path): string
{
    return str_replace('/', '-', ltrim($path, '/'));
}

/** GET through the proxy; returns the X-Cache header. */
function fetch(string $path): string
{
    $context = stream_context_create(['http' => ['timeout' => 10, 'ignore_errors' => true]]);
    $body = @file_get_contents(getenv('PROXY_URL') . $path, false, $context);
    check($body !== false, "GET $path through the proxy failed");
    $headers = $http_response_header;
    check((bool)preg_match('~^HTTP/\S+ 200~', $headers[0] ?? ''), "GET $path: " . ($headers[0] ?? 'no status'));
    foreach ($headers as $line) {
        if (stripos($line, 'x-cache:') === 0) {
            return trim(substr($line, 8));
        }
    }
    return '';
}

function origin_count(string $path): int
{
    $raw = file_get_contents(getenv('ORIGIN_URL') . '/__count?path=' . rawurlencode($path));
    return (int)json_decode((string)$raw, true)['count'];
}

function fresh_hit(string $xCache): bool
{
    return strcasecmp(trim($xCache), 'HIT') === 0;
}

/** GET until the object is a fresh HIT (the first GET of a new path is not one). */
function cache(string $path): void
{
    check(!fresh_hit(fetch($path)), "first GET of $path should not be a HIT");
    for ($i = 0; $i < 20; $i++) {
        if (fresh_hit(fetch($path))) {
            return;
        }
        usleep(50000);
    }
    throw new TestFailure("$path never became a HIT through the proxy");
}

function check_purged(string $path): void
{
    $before = origin_count($path);
    $xCache = fetch($path);
    check(stripos($xCache, 'MISS') !== false, "GET $path after the purge should be a MISS (X-Cache: $xCache)");
    check(origin_count($path) > $before, "the origin should have been asked for $path again");
}

/**
 * After a soft purge the object is stale: the next GET must reach the origin (a revalidation
 * or a refetch) before it is answered. The X-Cache label is not checked: the proxy labels a
 * response refreshed by a 304 "HIT"; the origin's count is the evidence.
 */
function check_soft_purged(string $path): void
{
    $before = origin_count($path);
    $xCache = fetch($path);
    check(origin_count($path) > $before,
        "GET $path after a soft purge must be revalidated or refetched, not a fresh HIT (X-Cache: $xCache)");
}

function check_still_cached(string $path): void
{
    check(fresh_hit(fetch($path)), "$path should still be a HIT");
}

function check_purge_id($id): void
{
    check(is_string($id) && $id !== '', 'purge id should be a non-empty string, got ' . var_export($id, true));
}

/** Run the CLI; returns [exit status, stdout, stderr]. */
function run_cli(array $args): array
{
    $cmd = array_merge([PHP_BINARY, CLI], $args);
    $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    check(is_resource($proc), 'could not start the CLI');
    $out = stream_get_contents($pipes[1]);
    $err = stream_get_contents($pipes[2]);
    fclose($pipes[1]);
    fclose($pipes[2]);
    return [proc_close($proc), $out, $err];
}

// --- offline tests --------------------------------------------------------------------------

function test_url_purge_path_strips_scheme_and_fragment(): void
{
    check_same('/purge/example.com/a/b?x', Client::urlPurgePath('http://example.com/a/b?x'));
    check_same('/purge/example.com/a/b?x', Client::urlPurgePath('HTTPS://Example.COM/a/b?x#frag'));
    check_same('/purge/example.com:8080/', Client::urlPurgePath('example.com:8080'));
    check_same('/purge/example.com/?q=1', Client::urlPurgePath('//example.com?q=1'));
    check_same('/purge/h/a%20b/%C3%BC%22', Client::urlPurgePath("http://h/a b/\u{fc}\""));
    check_same('/purge/h/already%2Fescaped', Client::urlPurgePath('http://h/already%2Fescaped'));
    check_throws(InvalidArgumentException::class, function () {
        Client::urlPurgePath('/no/host');
    });
}

function test_configuration_errors(): void
{
    check_throws(InvalidArgumentException::class, function () {
        new Client('ftp://x', null, 't');
    });
    check_throws(InvalidArgumentException::class, function () {
        new Client('http://127.0.0.1:1', null, 'bad token');
    });
    $c = new Client('http://127.0.0.1:1/', 'svc', 't');
    check_same('http://127.0.0.1:1', $c->getUrl());
    check_same('svc', $c->getService());
    check_throws(InvalidArgumentException::class, function () use ($c) {
        $c->purgeKey('two words');
    });
    check_throws(InvalidArgumentException::class, function () use ($c) {
        $c->purgeKey('');
    });
    check_throws(InvalidArgumentException::class, function () use ($c) {
        $c->purgeKeys(['ok', null]);
    });
    check_same([], $c->purgeKeys([]));
    check(new PurgeException(401, 'x') instanceof RuntimeException, 'PurgeException is a RuntimeException');
}

function test_refused_connection_raises_without_status(): void
{
    $server = stream_socket_server('tcp://127.0.0.1:0');
    $port = (int)substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
    fclose($server); // bound, then closed: nobody listens
    $c = new Client("http://127.0.0.1:$port", null, 't');
    $e = check_throws(PurgeException::class, function () use ($c) {
        $c->purgeKey('k');
    });
    check_same(null, $e->getStatus());
    check(stripos($e->getMessage(), 'refused') !== false, 'message names the refusal: ' . $e->getMessage());
}

function test_read_timeout_raises(): void
{
    $server = stream_socket_server('tcp://127.0.0.1:0'); // listens, never answers
    $port = (int)substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
    $c = new Client("http://127.0.0.1:$port", null, 't', 5.0, 0.5);
    $started = microtime(true);
    $e = check_throws(PurgeException::class, function () use ($c) {
        $c->purgeAll();
    });
    check_same(null, $e->getStatus());
    check(microtime(true) - $started < 4, 'the read timeout should end the wait');
    fclose($server);
}

// --- live tests -----------------------------------------------------------------------------

function test_purge_url(): void
{
    need_live();
    $path = fresh_path('url') . '?v=1&w=two'; // the query is part of the URL purged
    cache($path);
    check_purge_id((new Client())->purgeUrl(getenv('PROXY_URL') . $path));
    check_purged($path);
}

function test_purge_key(): void
{
    need_live();
    $path = fresh_path('key');
    cache($path);
    check_purge_id((new Client())->purgeKey(key_for($path)));
    check_purged($path);
}

function test_purge_keys_batch(): void
{
    need_live();
    $a = fresh_path('batch-a');
    $b = fresh_path('batch-b');
    cache($a);
    cache($b);
    $ids = (new Client())->purgeKeys([key_for($a), key_for($b)]);
    $got = array_keys($ids);
    sort($got);
    $want = [key_for($a), key_for($b)];
    sort($want);
    check_same($want, $got, 'batch result keys');
    foreach ($ids as $id) {
        check_purge_id($id);
    }
    check_purged($a);
    check_purged($b);
}

function test_purge_keys_splits_above_256(): void
{
    need_live();
    $path = fresh_path('batch-big');
    cache($path);
    $keys = [];
    for ($i = 1; $i < 300; $i++) {
        $keys[] = "php-filler-$i";
    }
    $keys[] = key_for($path);
    $ids = (new Client())->purgeKeys($keys);
    $got = array_map('strval', array_keys($ids));
    sort($got);
    sort($keys);
    check_same($keys, $got, 'every key of the split batch has an id');
    check_purged($path);
}

function test_purge_all(): void
{
    need_live();
    $a = fresh_path('all-a');
    $b = fresh_path('all-b');
    cache($a);
    cache($b);
    check_same(true, (new Client())->purgeAll());
    check_purged($a);
    check_purged($b);
}

function test_soft_purge_url(): void
{
    need_live();
    $path = fresh_path('soft-url');
    cache($path);
    check_purge_id((new Client())->purgeUrl(getenv('PROXY_URL') . $path, true));
    check_soft_purged($path);
}

function test_soft_purge_key(): void
{
    need_live();
    $path = fresh_path('soft-key');
    cache($path);
    check_purge_id((new Client())->purgeKey(key_for($path), true));
    check_soft_purged($path);
}

function test_soft_purge_keys_batch(): void
{
    need_live();
    $path = fresh_path('soft-batch');
    cache($path);
    $ids = (new Client())->purgeKeys([key_for($path)], true);
    check_purge_id($ids[key_for($path)] ?? null);
    check_soft_purged($path);
}

function test_wrong_token_raises_401_and_purges_nothing(): void
{
    need_live();
    $path = fresh_path('wrong-token');
    cache($path);
    $bad = new Client(null, null, 'not-a-valid-token');
    $calls = [
        function () use ($bad, $path) {
            $bad->purgeKey(key_for($path));
        },
        function () use ($bad, $path) {
            $bad->purgeUrl(getenv('PROXY_URL') . $path);
        },
        function () use ($bad, $path) {
            $bad->purgeKeys([key_for($path)]);
        },
        function () use ($bad) {
            $bad->purgeAll();
        },
    ];
    foreach ($calls as $call) {
        $e = check_throws(PurgeException::class, $call);
        check_same(401, $e->getStatus());
        check_same(401, $e->getCode());
        check($e->getServerMessage() !== '', 'the server message is carried');
    }
    check_still_cached($path);
}

function test_purge_select_token_may_purge_keys_but_not_all(): void
{
    need_live();
    $path = fresh_path('select');
    cache($path);
    $select = new Client(null, null, getenv('EDGECACHE_SELECT_TOKEN'));
    $e = check_throws(PurgeException::class, function () use ($select) {
        $select->purgeAll();
    });
    check_same(403, $e->getStatus());
    check($e->getServerMessage() !== '', 'the server message is carried');
    check_still_cached($path);
    check_purge_id($select->purgeKey(key_for($path)));
    check_purged($path);
}

function test_cli_purges_keys_and_fails_with_exit_1(): void
{
    need_live();
    $a = fresh_path('cli-a');
    $b = fresh_path('cli-b');
    cache($a);
    cache($b);
    [$status, $out, $err] = run_cli(['key', key_for($a), key_for($b)]);
    check_same(0, $status, "edgecache-purge key ($err)");
    $firsts = [];
    foreach (preg_split('/\n/', trim($out)) as $line) {
        $fields = preg_split('/\s+/', trim($line));
        check_same(2, count($fields), "output line '$line'");
        $firsts[] = $fields[0];
    }
    sort($firsts);
    $want = [key_for($a), key_for($b)];
    sort($want);
    check_same($want, $firsts, 'CLI output keys');
    check_purged($a);
    check_purged($b);

    [$status, $out, $err] = run_cli(['url', '--soft', getenv('PROXY_URL') . $a]);
    check_same(0, $status, "edgecache-purge url ($err)");
    check_same(getenv('PROXY_URL') . $a, preg_split('/\s+/', trim($out))[0]);

    [$status, , $err] = run_cli(['--token', 'not-a-valid-token', 'all']);
    check_same(1, $status, 'exit status of a failed purge');
    check(strpos($err, '401') !== false, "stderr names the status: $err");
}

// --- runner ---------------------------------------------------------------------------------

$passed = $failed = $skipped = 0;
foreach (get_defined_functions()['user'] as $function) {
    if (strpos($function, 'test_') !== 0) {
        continue;
    }
    try {
        $function();
        $passed++;
        echo "ok   $function\n";
    } catch (SkipTest $e) {
        $skipped++;
        echo "skip $function: {$e->getMessage()}\n";
    } catch (Throwable $e) {
        $failed++;
        echo "FAIL $function: " . get_class($e) . ': ' . $e->getMessage() . "\n";
        if (!($e instanceof TestFailure)) {
            echo $e->getTraceAsString(), "\n";
        }
    }
}
echo "php: $passed passed, $failed failed, $skipped skipped\n";
exit($failed === 0 ? 0 : 1);
