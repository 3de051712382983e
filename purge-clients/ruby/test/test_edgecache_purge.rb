# frozen_string_literal: true

# Tests for edgecache_purge.rb. The live tests need a running edgecache in front of the test
# origin of tests/clients/run, which exports EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN
# (global scope), EDGECACHE_SELECT_TOKEN (purge_select scope), PROXY_URL and ORIGIN_URL;
# without them only the offline tests run. The origin tags each path with the surrogate key
# "path-with-slashes-as-dashes" and max-age=3600, and counts requests at /__count?path=...
#
#   ruby purge-clients/ruby/test/test_edgecache_purge.rb

require "minitest/autorun"
require "json"
require "net/http"
require "open3"
require "socket"
require "securerandom"
require_relative "../edgecache_purge"

module ClientTestHelpers
  CLI = File.expand_path("../edgecache-purge", __dir__)

  def live?
    %w[EDGECACHE_URL EDGECACHE_TOKEN EDGECACHE_SELECT_TOKEN PROXY_URL ORIGIN_URL].all? { |v| ENV[v].to_s != "" }
  end

  def need_live
    skip "no live edgecache (run tests/clients/run)" unless live?
  end

  def fresh_path(name)
    "/rb/#{name}-#{SecureRandom.hex(6)}"
  end

  def key_for(path)
    path.sub(%r{\A/}, "").tr("/", "-")
  end

  def fetch(path)
    uri = URI(ENV["PROXY_URL"] + path)
    response = Net::HTTP.start(uri.hostname, uri.port, open_timeout: 5, read_timeout: 10) do |http|
      http.request(Net::HTTP::Get.new(uri))
    end
    assert_equal "200", response.code, "GET #{path} through the proxy"
    response["X-Cache"].to_s
  end

  def origin_count(path)
    uri = URI("#{ENV['ORIGIN_URL']}/__count?path=#{URI.encode_www_form_component(path)}")
    JSON.parse(Net::HTTP.get(uri))["count"]
  end

  def fresh_hit?(x_cache)
    x_cache.strip.casecmp?("HIT")
  end

  # GET until the object is a fresh HIT (the first GET of a new path must not be one).
  def cache(path)
    refute fresh_hit?(fetch(path)), "first GET of #{path} should not be a HIT"
    20.times do
      return if fresh_hit?(fetch(path))

      sleep 0.05
    end
    flunk "#{path} never became a HIT through the proxy"
  end

  def assert_purged(path)
    before = origin_count(path)
    x_cache = fetch(path)
    assert_match(/MISS/i, x_cache, "GET #{path} after the purge should be a MISS")
    assert_operator origin_count(path), :>, before, "the origin should have been asked for #{path} again"
  end

  # After a soft purge the object is stale: the next GET must reach the origin (a
  # revalidation or a refetch) before it is answered. The X-Cache label is not checked: the
  # proxy labels a response refreshed by a 304 "HIT"; the origin's count is the evidence.
  def assert_soft_purged(path)
    before = origin_count(path)
    x_cache = fetch(path)
    assert_operator origin_count(path), :>, before,
                    "GET #{path} after a soft purge must be revalidated or refetched, not a fresh HIT (X-Cache: #{x_cache})"
  end

  def assert_still_cached(path)
    assert fresh_hit?(fetch(path)), "#{path} should still be a HIT"
  end

  def assert_purge_id(id)
    assert_kind_of String, id
    refute_empty id
  end

  def client(**args)
    EdgecachePurge::Client.new(**args)
  end
end

class TestOffline < Minitest::Test
  def test_url_purge_path_strips_scheme_and_fragment
    assert_equal "/purge/example.com/a/b?x", EdgecachePurge.url_purge_path("http://example.com/a/b?x")
    assert_equal "/purge/example.com/a/b?x", EdgecachePurge.url_purge_path("HTTPS://Example.COM/a/b?x#frag")
    assert_equal "/purge/example.com:8080/", EdgecachePurge.url_purge_path("example.com:8080")
    assert_equal "/purge/example.com/?q=1", EdgecachePurge.url_purge_path("//example.com?q=1")
    assert_equal "/purge/h/a%20b/%C3%BC%22", EdgecachePurge.url_purge_path("http://h/a b/\u00fc\"")
    assert_equal "/purge/h/already%2Fescaped", EdgecachePurge.url_purge_path("http://h/already%2Fescaped")
    assert_raises(ArgumentError) { EdgecachePurge.url_purge_path("/no/host") }
  end

  def test_configuration_errors
    assert_raises(ArgumentError) { EdgecachePurge::Client.new(url: "ftp://x", token: "t") }
    assert_raises(ArgumentError) { EdgecachePurge::Client.new(url: "http://127.0.0.1:1", token: "bad token") }
    c = EdgecachePurge::Client.new(url: "http://127.0.0.1:1/", service: "svc", token: "t")
    assert_equal "http://127.0.0.1:1", c.url
    assert_equal 5.0, c.connect_timeout
    assert_equal 5.0, c.read_timeout
    assert_raises(ArgumentError) { c.purge_key("two words") }
    assert_raises(ArgumentError) { c.purge_key("") }
    assert_raises(ArgumentError) { c.purge_keys(["ok", nil]) }
    assert_equal({}, c.purge_keys([]))
  end

  def test_refused_connection_raises_without_status
    port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] } # bound, then closed: nobody listens
    c = EdgecachePurge::Client.new(url: "http://127.0.0.1:#{port}", token: "t")
    e = assert_raises(EdgecachePurge::Error) { c.purge_key("k") }
    assert_nil e.status
    assert_match(/refused/i, e.message)
  end

  def test_read_timeout_raises
    server = TCPServer.new("127.0.0.1", 0) # listens, never answers
    c = EdgecachePurge::Client.new(url: "http://127.0.0.1:#{server.addr[1]}", token: "t", read_timeout: 0.5)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    e = assert_raises(EdgecachePurge::Error) { c.purge_all }
    assert_nil e.status
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 4
  ensure
    server&.close
  end
end

class TestLive < Minitest::Test
  include ClientTestHelpers

  def setup
    need_live
  end

  def test_purge_url
    path = fresh_path("url") + "?v=1&w=two" # the query is part of the URL purged
    cache(path)
    assert_purge_id client.purge_url(ENV["PROXY_URL"] + path)
    assert_purged(path)
  end

  def test_purge_key
    path = fresh_path("key")
    cache(path)
    assert_purge_id client.purge_key(key_for(path))
    assert_purged(path)
  end

  def test_purge_keys_batch
    a = fresh_path("batch-a")
    b = fresh_path("batch-b")
    cache(a)
    cache(b)
    ids = client.purge_keys([key_for(a), key_for(b)])
    assert_equal [key_for(a), key_for(b)].sort, ids.keys.sort
    ids.each_value { |id| assert_purge_id id }
    assert_purged(a)
    assert_purged(b)
  end

  def test_purge_keys_splits_above_256
    path = fresh_path("batch-big")
    cache(path)
    keys = (1..299).map { |i| "rb-filler-#{i}" } + [key_for(path)]
    ids = client.purge_keys(keys)
    assert_equal keys.sort, ids.keys.sort
    assert_purged(path)
  end

  def test_purge_all
    a = fresh_path("all-a")
    b = fresh_path("all-b")
    cache(a)
    cache(b)
    assert_equal true, client.purge_all
    assert_purged(a)
    assert_purged(b)
  end

  def test_soft_purge_url
    path = fresh_path("soft-url")
    cache(path)
    assert_purge_id client.purge_url(ENV["PROXY_URL"] + path, soft: true)
    assert_soft_purged(path)
  end

  def test_soft_purge_key
    path = fresh_path("soft-key")
    cache(path)
    assert_purge_id client.purge_key(key_for(path), soft: true)
    assert_soft_purged(path)
  end

  def test_soft_purge_keys_batch
    path = fresh_path("soft-batch")
    cache(path)
    ids = client.purge_keys([key_for(path)], soft: true)
    assert_purge_id ids[key_for(path)]
    assert_soft_purged(path)
  end

  def test_wrong_token_raises_401_and_purges_nothing
    path = fresh_path("wrong-token")
    cache(path)
    bad = client(token: "not-a-valid-token")
    [-> { bad.purge_key(key_for(path)) }, -> { bad.purge_url(ENV["PROXY_URL"] + path) },
     -> { bad.purge_keys([key_for(path)]) }, -> { bad.purge_all }].each do |call|
      e = assert_raises(EdgecachePurge::Error) { call.call }
      assert_equal 401, e.status
      refute_empty e.msg.to_s
    end
    assert_still_cached(path)
  end

  def test_purge_select_token_may_purge_keys_but_not_all
    path = fresh_path("select")
    cache(path)
    select = client(token: ENV["EDGECACHE_SELECT_TOKEN"])
    e = assert_raises(EdgecachePurge::Error) { select.purge_all }
    assert_equal 403, e.status
    refute_empty e.msg.to_s
    assert_still_cached(path)
    assert_purge_id select.purge_key(key_for(path))
    assert_purged(path)
  end

  def test_cli_purges_keys_and_fails_with_exit_1
    a = fresh_path("cli-a")
    b = fresh_path("cli-b")
    cache(a)
    cache(b)
    out, err, status = Open3.capture3(CLI, "key", key_for(a), key_for(b))
    assert status.success?, "edgecache-purge key failed: #{err}"
    lines = out.lines.map(&:split)
    assert_equal [key_for(a), key_for(b)].sort, lines.map(&:first).sort
    lines.each { |(_, id)| assert_purge_id id }
    assert_purged(a)
    assert_purged(b)

    out, err, status = Open3.capture3(CLI, "url", "--soft", ENV["PROXY_URL"] + a)
    assert status.success?, "edgecache-purge url failed: #{err}"
    assert_equal ENV["PROXY_URL"] + a, out.split.first

    _out, err, status = Open3.capture3(CLI, "--token", "not-a-valid-token", "all")
    assert_equal 1, status.exitstatus
    assert_match(/401/, err)
  end
end
