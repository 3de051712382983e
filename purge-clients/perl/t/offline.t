# Offline tests for EdgecachePurge.pm: URL paths, argument checks, network errors, timeouts.
#   prove -I purge-clients/perl purge-clients/perl/t

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Time::HiRes ();
use EdgecachePurge;

subtest 'url_purge_path strips the scheme and the fragment' => sub {
    my $p = \&EdgecachePurge::url_purge_path;
    is $p->('http://example.com/a/b?x'), '/purge/example.com/a/b?x';
    is $p->('HTTPS://Example.COM/a/b?x#frag'), '/purge/example.com/a/b?x';
    is $p->('example.com:8080'), '/purge/example.com:8080/';
    is $p->('//example.com?q=1'), '/purge/example.com/?q=1';
    is $p->("http://h/a b/\xc3\xbc\""), '/purge/h/a%20b/%C3%BC%22';
    is $p->('http://h/already%2Fescaped'), '/purge/h/already%2Fescaped';
    ok !eval { $p->('/no/host'); 1 }, 'a URL without a host dies';
    like $@, qr/must include a host/;
};

subtest 'configuration errors' => sub {
    ok !eval { EdgecachePurge->new(url => 'ftp://x', token => 't'); 1 }, 'ftp URL refused';
    ok !eval { EdgecachePurge->new(url => 'http://127.0.0.1:1', token => 'bad token'); 1 }, 'token with a space refused';
    my $c = EdgecachePurge->new(url => 'http://127.0.0.1:1/', service => 'svc', token => 't');
    is $c->url, 'http://127.0.0.1:1';
    is $c->service, 'svc';
    is $c->connect_timeout, 5;
    is $c->read_timeout, 5;
    ok !eval { $c->purge_key('two words'); 1 }, 'key with a space refused';
    ok !eval { $c->purge_key(''); 1 }, 'empty key refused';
    ok !eval { $c->purge_keys(['ok', undef]); 1 }, 'undef key refused';
    ok !eval { $c->purge_keys('one-string'); 1 }, 'purge_keys needs an array ref';
    is_deeply $c->purge_keys([]), {}, 'no keys, no request';
};

subtest 'a refused connection dies with an error object without status' => sub {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die $!;
    my $port = $s->sockport;
    close $s;    # bound, then closed: nobody listens
    my $c = EdgecachePurge->new(url => "http://127.0.0.1:$port", token => 't');
    ok !eval { $c->purge_key('k'); 1 }, 'purge_key died';
    my $e = $@;
    isa_ok $e, 'EdgecachePurge::Error';
    ok !defined $e->status, 'no HTTP status';
    like "$e", qr/refused/i, 'stringifies to the reason';
};

subtest 'the read timeout ends a request the server never answers' => sub {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 4) or die $!;
    my $c = EdgecachePurge->new(url => 'http://127.0.0.1:' . $s->sockport, token => 't', read_timeout => 0.5);
    my $started = Time::HiRes::time();
    ok !eval { $c->purge_all; 1 }, 'purge_all died';
    my $e = $@;
    isa_ok $e, 'EdgecachePurge::Error';
    ok !defined $e->status, 'no HTTP status';
    cmp_ok Time::HiRes::time() - $started, '<', 4, 'within the timeout';
    close $s;
};

done_testing;
