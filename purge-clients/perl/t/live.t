# Live tests for EdgecachePurge.pm against a running edgecache in front of the test origin
# of tests/clients/run, which exports EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN
# (global scope), EDGECACHE_SELECT_TOKEN (purge_select scope), PROXY_URL and ORIGIN_URL.
# The origin tags each path with the surrogate key "path-with-slashes-as-dashes" and
# max-age=3600, and counts requests at /__count?path=...
#   prove -I purge-clients/perl purge-clients/perl/t

use strict;
use warnings;
use Test::More;
use FindBin ();
use HTTP::Tiny;
use JSON::PP ();
use Time::HiRes ();
use EdgecachePurge;

my @vars = qw(EDGECACHE_URL EDGECACHE_TOKEN EDGECACHE_SELECT_TOKEN PROXY_URL ORIGIN_URL);
plan skip_all => 'no live edgecache (run tests/clients/run)' if grep { !length($ENV{$_} // '') } @vars;

my $CLI   = "$FindBin::Bin/../edgecache-purge";
my $PROXY = $ENV{PROXY_URL};
my $HTTP  = HTTP::Tiny->new(timeout => 10, proxy => undef, http_proxy => undef, keep_alive => 0);

sub fresh_path { sprintf '/pl/%s-%06x%06x', $_[0], int rand 0xffffff, int rand 0xffffff }
sub key_for { (my $k = $_[0]) =~ s{\A/}{}; $k =~ tr{/}{-}; $k }
sub fresh_hit { ($_[0] // '') =~ /\A\s*HIT\s*\z/i }

# GET through the proxy; returns the X-Cache header.
sub fetch {
    my ($path) = @_;
    my $r = $HTTP->get($PROXY . $path);
    die "GET $path through the proxy: $r->{status} $r->{reason}\n" unless $r->{status} == 200;
    return $r->{headers}{'x-cache'} // '';
}

sub origin_count {
    my ($path) = @_;
    my $q = $path;
    $q =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    my $r = $HTTP->get("$ENV{ORIGIN_URL}/__count?path=$q");
    die "origin count: $r->{status}\n" unless $r->{success};
    return JSON::PP::decode_json($r->{content})->{count};
}

# GET until the object is a fresh HIT (the first GET of a new path is not one).
sub cache_it {
    my ($path) = @_;
    ok !fresh_hit(fetch($path)), "first GET of $path is not a HIT";
    for (1 .. 20) {
        if (fresh_hit(fetch($path))) { pass "$path is a HIT"; return }
        Time::HiRes::sleep(0.05);
    }
    fail "$path never became a HIT through the proxy";
}

sub purged_ok {
    my ($path) = @_;
    my $before = origin_count($path);
    like fetch($path), qr/MISS/i, "GET $path after the purge is a MISS";
    cmp_ok origin_count($path), '>', $before, 'the origin was asked again';
}

# After a soft purge the object is stale: the next GET must reach the origin (a revalidation
# or a refetch) before it is answered. The X-Cache label is not checked: the proxy labels a
# response refreshed by a 304 "HIT"; the origin's count is the evidence.
sub soft_purged_ok {
    my ($path) = @_;
    my $before = origin_count($path);
    my $x_cache = fetch($path);
    cmp_ok origin_count($path), '>', $before,
        "GET $path after a soft purge is revalidated or refetched, not a fresh HIT (X-Cache: $x_cache)";
}

sub still_cached_ok { ok fresh_hit(fetch($_[0])), "$_[0] is still a HIT" }
sub purge_id_ok { ok defined $_[0] && !ref $_[0] && length $_[0], 'a purge id' }

# dies_with_status(CODE, STATUS): CODE dies with an EdgecachePurge::Error of that status
sub dies_with_status {
    my ($code, $status, $name) = @_;
    my $ok = eval { $code->(); 1 };
    my $e = $@;
    ok !$ok, "$name dies";
    isa_ok $e, 'EdgecachePurge::Error', $name;
    is ref $e && $e->status, $status, "$name: status $status";
    ok ref $e && length $e->msg, "$name: the server message is carried";
}

sub run_cli {    # returns (exit status, stdout, stderr)
    my @args = @_;
    my $err_file = "/tmp/edgecache-purge-pl-$$.err";
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $err_file or die $!;
        exec $^X, $CLI, @args or die "exec: $!";
    }
    local $/;
    my $stdout = <$out> // '';
    close $out;
    my $status = $? >> 8;
    open my $fh, '<', $err_file or die $!;
    my $stderr = <$fh> // '';
    close $fh;
    unlink $err_file;
    return ($status, $stdout, $stderr);
}

my $client = EdgecachePurge->new;

subtest 'purge_url' => sub {
    my $path = fresh_path('url') . '?v=1&w=two';    # the query is part of the URL purged
    cache_it($path);
    purge_id_ok $client->purge_url($PROXY . $path);
    purged_ok($path);
};

subtest 'purge_key' => sub {
    my $path = fresh_path('key');
    cache_it($path);
    purge_id_ok $client->purge_key(key_for($path));
    purged_ok($path);
};

subtest 'purge_keys (batch)' => sub {
    my ($a, $b) = (fresh_path('batch-a'), fresh_path('batch-b'));
    cache_it($_) for $a, $b;
    my $ids = $client->purge_keys([key_for($a), key_for($b)]);
    is_deeply [sort keys %$ids], [sort(key_for($a), key_for($b))], 'an id per key';
    purge_id_ok $_ for values %$ids;
    purged_ok($_) for $a, $b;
};

subtest 'purge_keys splits above 256 keys' => sub {
    my $path = fresh_path('batch-big');
    cache_it($path);
    my @keys = ((map {"pl-filler-$_"} 1 .. 299), key_for($path));
    my $ids = $client->purge_keys(\@keys);
    is_deeply [sort keys %$ids], [sort @keys], 'every key of the split batch has an id';
    purged_ok($path);
};

subtest 'purge_all' => sub {
    my ($a, $b) = (fresh_path('all-a'), fresh_path('all-b'));
    cache_it($_) for $a, $b;
    is $client->purge_all, 1, 'purge_all returns 1';
    purged_ok($_) for $a, $b;
};

subtest 'soft purge_url' => sub {
    my $path = fresh_path('soft-url');
    cache_it($path);
    purge_id_ok $client->purge_url($PROXY . $path, soft => 1);
    soft_purged_ok($path);
};

subtest 'soft purge_key' => sub {
    my $path = fresh_path('soft-key');
    cache_it($path);
    purge_id_ok $client->purge_key(key_for($path), soft => 1);
    soft_purged_ok($path);
};

subtest 'soft purge_keys' => sub {
    my $path = fresh_path('soft-batch');
    cache_it($path);
    my $ids = $client->purge_keys([key_for($path)], soft => 1);
    purge_id_ok $ids->{ key_for($path) };
    soft_purged_ok($path);
};

subtest 'a wrong token dies with 401 and purges nothing' => sub {
    my $path = fresh_path('wrong-token');
    cache_it($path);
    my $bad = EdgecachePurge->new(token => 'not-a-valid-token');
    dies_with_status(sub { $bad->purge_key(key_for($path)) }, 401, 'purge_key');
    dies_with_status(sub { $bad->purge_url($PROXY . $path) }, 401, 'purge_url');
    dies_with_status(sub { $bad->purge_keys([key_for($path)]) }, 401, 'purge_keys');
    dies_with_status(sub { $bad->purge_all }, 401, 'purge_all');
    still_cached_ok($path);
};

subtest 'a purge_select token may purge keys but not all' => sub {
    my $path = fresh_path('select');
    cache_it($path);
    my $select = EdgecachePurge->new(token => $ENV{EDGECACHE_SELECT_TOKEN});
    dies_with_status(sub { $select->purge_all }, 403, 'purge_all with purge_select');
    still_cached_ok($path);
    purge_id_ok $select->purge_key(key_for($path));
    purged_ok($path);
};

subtest 'the CLI purges keys and fails with exit 1' => sub {
    my ($a, $b) = (fresh_path('cli-a'), fresh_path('cli-b'));
    cache_it($_) for $a, $b;
    my ($status, $out, $err) = run_cli('key', key_for($a), key_for($b));
    is $status, 0, "edgecache-purge key ($err)";
    my @lines = map { [split ' '] } split /\n/, $out;
    is_deeply [sort map { $_->[0] } @lines], [sort(key_for($a), key_for($b))], 'a line per key';
    is scalar(@$_), 2, 'key and id' for @lines;
    purged_ok($_) for $a, $b;

    ($status, $out, $err) = run_cli('url', '--soft', $PROXY . $a);
    is $status, 0, "edgecache-purge url ($err)";
    is((split ' ', $out)[0], $PROXY . $a, 'prints the URL and its id');

    ($status, $out, $err) = run_cli('--token', 'not-a-valid-token', 'all');
    is $status, 1, 'exit 1 on a failed purge';
    like $err, qr/401/, 'stderr names the status';
};

done_testing;
