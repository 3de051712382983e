package EdgecachePurge;

# EdgecachePurge.pm — purge client for edgecache's Fastly-compatible admin API.
#
# Core modules only (HTTP::Tiny, JSON::PP; perl >= 5.14); drop this one file into any project:
#
#   use lib '/path/to/purge-clients/perl';
#   use EdgecachePurge;
#   my $purge = EdgecachePurge->new;    # EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN
#   my $id  = $purge->purge_key('product-42');                        # "node-1700000000-17"
#   $purge->purge_url('https://shop.example/p/42', soft => 1);
#   my $ids = $purge->purge_keys(['product-42', 'category-7']);       # { 'product-42' => '...', ... }
#   $purge->purge_all;                                                # 1
#
# Every failure (HTTP 4xx/5xx, an unexpected answer, a refused connection, a timeout) dies
# with an EdgecachePurge::Error object carrying ->status (undef when no HTTP answer came)
# and ->msg (the server's "msg"); it stringifies to a one-line message. Nothing is
# reported as success unless the server answered 2xx with the JSON the API promises.

use strict;
use warnings;

use Carp ();
use HTTP::Tiny;
use JSON::PP ();

our $VERSION = '1.0.0';

# The batch endpoint takes at most this many keys; purge_keys splits longer lists.
our $MAX_KEYS_PER_REQUEST = 256;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

# new(url => ..., service => ..., token => ..., connect_timeout => 5, read_timeout => 5)
#   url      admin API base URL, e.g. "http://127.0.0.1:8081" (default $ENV{EDGECACHE_URL})
#   service  service id (default $ENV{EDGECACHE_SERVICE}, else "edgecache")
#   token    API token sent as Fastly-Key (default $ENV{EDGECACHE_TOKEN})
#   connect_timeout  seconds for the TCP connect and TLS handshake (default 5)
#   read_timeout     seconds each socket read or write may wait (default 5)
# Dies with a plain message (croak style) when the URL or token is missing or malformed.
sub new {
    my ($class, %args) = @_;
    my $url     = _presence($args{url})     // _presence($ENV{EDGECACHE_URL});
    my $service = _presence($args{service}) // _presence($ENV{EDGECACHE_SERVICE}) // 'edgecache';
    my $token   = _presence($args{token})   // _presence($ENV{EDGECACHE_TOKEN});
    my $connect_timeout = $args{connect_timeout} // 5;
    my $read_timeout    = $args{read_timeout}    // 5;
    _usage('edgecache admin URL missing: pass url => ... or set EDGECACHE_URL') unless defined $url;
    _usage('edgecache token missing: pass token => ... or set EDGECACHE_TOKEN') unless defined $token;
    _usage('token contains whitespace or control characters') if $token =~ /[\s\x00-\x1f\x7f]/;
    for ($connect_timeout, $read_timeout) {
        _usage('timeouts must be positive numbers of seconds')
            unless /\A(?:\d+(?:\.\d*)?|\.\d+)\z/ && $_ > 0;
    }
    $url =~ s{/+\z}{};
    _usage(qq{edgecache admin URL must be http:// or https://, got "$url"})
        unless $url =~ m{\Ahttps?://[^/?#\s]+(?:/[^?#\s]*)?\z}i;

    my $http = EdgecachePurge::_HTTP->new(
        agent           => "edgecache-purge-perl/$VERSION",
        timeout         => $read_timeout,
        max_redirect    => 0,
        keep_alive      => 0,
        verify_SSL      => 1,
    );
    $http->{connect_timeout} = $connect_timeout;

    return bless {
        url             => $url,
        service         => $service,
        token           => $token,
        connect_timeout => $connect_timeout,
        read_timeout    => $read_timeout,
        http            => $http,
    }, $class;
}

sub url             { $_[0]{url} }
sub service         { $_[0]{service} }
sub connect_timeout { $_[0]{connect_timeout} }
sub read_timeout    { $_[0]{read_timeout} }

# purge_url($url, soft => 1): purge one URL (every variant). Returns the purge id.
sub purge_url {
    my ($self, $url, %opt) = @_;
    return _single_id($self->_post(url_purge_path($url), $opt{soft}));
}

# purge_key($key, soft => 1): purge every object tagged with the surrogate key. Returns the id.
sub purge_key {
    my ($self, $key, %opt) = @_;
    _check_key($key);
    return _single_id($self->_post($self->_service_path . '/purge/' . _escape_segment($key), $opt{soft}));
}

# purge_keys(\@keys, soft => 1): purge several keys through the batch endpoint,
# $MAX_KEYS_PER_REQUEST per request (longer lists are split; if a later request fails,
# the earlier ones have already purged). Returns a hash ref key => purge id.
sub purge_keys {
    my ($self, $keys, %opt) = @_;
    _usage('purge_keys takes an array ref of keys') unless ref $keys eq 'ARRAY';
    my (%seen, @unique);
    for my $key (@$keys) {
        _check_key($key);
        push @unique, $key unless $seen{$key}++;
    }
    my %result;
    while (my @chunk = splice @unique, 0, $MAX_KEYS_PER_REQUEST) {
        my ($status, $body) = $self->_post($self->_service_path . '/purge', $opt{soft},
                                           { surrogate_keys => \@chunk });
        die EdgecachePurge::Error->new(status => $status,
                                       msg => 'unexpected response to batch purge: ' . _show($body))
            unless ref $body eq 'HASH' && !grep { !defined || ref } values %$body;
        @result{ keys %$body } = values %$body;
    }
    return \%result;
}

# purge_all(): purge everything in the service (never soft). Returns 1.
sub purge_all {
    my ($self) = @_;
    my ($status, $body) = $self->_post($self->_service_path . '/purge_all', 0);
    die EdgecachePurge::Error->new(status => $status,
                                   msg => 'unexpected response to purge_all: ' . _show($body))
        unless ref $body eq 'HASH' && defined $body->{status} && !ref $body->{status}
            && $body->{status} eq 'ok';
    return 1;
}

# url_purge_path($url): the admin path that purges $url. The scheme and fragment are
# dropped and the host lower-cased ("https://Example.com/a/b?x" -> "/purge/example.com/a/b?x");
# bytes that may not appear in a URL are percent-encoded, existing %XX escapes are kept.
sub url_purge_path {
    my ($url) = @_;
    _usage('url must be a string') unless defined $url && !ref $url;
    my $rest = $url;
    $rest =~ s/\A\s+|\s+\z//g;
    $rest =~ s/#.*\z//s;
    $rest =~ s{\A[A-Za-z][A-Za-z0-9+.\-]*://}{};
    $rest =~ s{\A//}{};
    my ($host, $tail) = $rest =~ m{\A([^/?]*)(.*)\z}s;
    $host =~ s/\A.*@//s;
    $host = lc $host;
    _usage(qq{url must include a host, got "$url"}) if $host eq '' || $host =~ /[\s\x00-\x1f\x7f]/;
    $tail = "/$tail" unless $tail =~ m{\A/};
    utf8::encode($tail) if utf8::is_utf8($tail);
    $tail =~ s{([^A-Za-z0-9\-._~:/?\[\]\@!\$&'()*+,;=%])}{sprintf('%%%02X', ord $1)}ge;
    return "/purge/$host$tail";
}

sub _service_path { '/service/' . _escape_segment($_[0]{service}) }

sub _presence {
    my ($value) = @_;
    return (defined $value && length $value) ? $value : undef;
}

# Argument errors die like croak: with the caller's file and line, as a plain string.
sub _usage { Carp::croak($_[0]) }

sub _check_key {
    my ($key) = @_;
    _usage('surrogate key must be a non-empty string without whitespace, got '
           . (defined $key ? qq{"$key"} : 'undef'))
        unless defined $key && !ref $key && length $key && $key !~ /[\s\x00-\x1f\x7f]/;
}

sub _escape_segment {
    my ($text) = @_;
    utf8::encode($text) if utf8::is_utf8($text);
    $text =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $text;
}

sub _show {
    my ($value) = @_;
    my $text = eval { $JSON->encode($value) } // 'undef';
    return substr($text, 0, 200);
}

sub _single_id {
    my ($status, $body) = @_;
    my $id = ref $body eq 'HASH' ? $body->{id} : undef;
    die EdgecachePurge::Error->new(status => $status,
                                   msg => 'unexpected response (no purge id): ' . _show($body))
        unless defined $id && !ref $id && length $id;
    return $id;
}

# POST to the admin API. Returns ($status, decoded JSON) for a 2xx JSON answer and dies
# with an EdgecachePurge::Error for everything else.
sub _post {
    my ($self, $path, $soft, $payload) = @_;
    my %headers = (
        'Fastly-Key' => $self->{token},
        'Accept'     => 'application/json',
    );
    $headers{'Fastly-Soft-Purge'} = '1' if $soft;
    my $content = '';
    if (defined $payload) {
        $headers{'Content-Type'} = 'application/json';
        $content = $JSON->encode($payload);
    }
    $headers{'Content-Length'} = length $content;
    my $full = $self->{url} . $path;
    my $res = $self->{http}->request('POST', $full, { headers => \%headers, content => $content });

    if ($res->{status} == 599 && ($res->{reason} // '') eq 'Internal Exception') {
        (my $why = $res->{content} // 'request failed') =~ s/\s+\z//;
        die EdgecachePurge::Error->new(status => undef, msg => "POST $full: $why");
    }
    my $raw  = $res->{content} // '';
    my $body = length $raw ? eval { $JSON->decode($raw) } : undef;
    if ($res->{status} < 200 || $res->{status} > 299) {
        my ($msg, $detail);
        if (ref $body eq 'HASH') {
            $msg    = $body->{msg}    if defined $body->{msg}    && !ref $body->{msg};
            $detail = $body->{detail} if defined $body->{detail} && !ref $body->{detail};
        }
        if (!defined $msg) {
            ($msg = substr($raw, 0, 200)) =~ s/\A\s+|\s+\z//g;
            $msg = $res->{reason} // '' if $msg eq '';
        }
        die EdgecachePurge::Error->new(status => $res->{status}, msg => $msg, detail => $detail);
    }
    die EdgecachePurge::Error->new(status => $res->{status},
                                   msg => 'response is not JSON: ' . substr($raw, 0, 200))
        unless defined $body;
    return ($res->{status}, $body);
}

package EdgecachePurge::Error;

# The exception object: ->status (HTTP status, undef for network errors and timeouts),
# ->msg (the server's "msg" or a description of the local failure), ->detail (the
# server's "detail" or undef), ->message (the whole one-line text, also what it
# stringifies to).

use strict;
use warnings;
use overload '""' => sub { $_[0]->message }, 'bool' => sub { 1 }, fallback => 1;

sub new {
    my ($class, %args) = @_;
    my $self = bless { status => $args{status}, msg => $args{msg} // '', detail => $args{detail} }, $class;
    my $text = defined $self->{status}
        ? "edgecache purge failed: HTTP $self->{status}: $self->{msg}"
        : "edgecache purge failed: $self->{msg}";
    $text .= " ($self->{detail})" if defined $self->{detail} && length $self->{detail};
    $self->{message} = $text;
    return $self;
}

sub throw   { my $class = shift; die $class->new(@_) }
sub status  { $_[0]{status} }
sub msg     { $_[0]{msg} }
sub detail  { $_[0]{detail} }
sub message { $_[0]{message} }

package EdgecachePurge::_HTTP;

# HTTP::Tiny has one timeout for connecting and for each read or write. This subclass
# connects under connect_timeout and then switches the handle to the read timeout. It
# relies on HTTP::Tiny's internal _open_handle (present since 0.0xx); without it the
# single read timeout covers the connect as well.

use strict;
use warnings;
our @ISA = ('HTTP::Tiny');

sub _open_handle {
    my $self = shift;
    my $read_timeout = $self->{timeout};
    my $handle = do {
        local $self->{timeout} = $self->{connect_timeout} // $read_timeout;
        $self->SUPER::_open_handle(@_);
    };
    $handle->timeout($read_timeout) if $handle && $handle->can('timeout');
    return $handle;
}

1;
