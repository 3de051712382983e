# frozen_string_literal: true

# edgecache_purge.rb — purge client for edgecache's Fastly-compatible admin API.
#
# Standard library only (Net::HTTP, JSON); drop this one file into any project:
#
#   require_relative "edgecache_purge"
#   purge = EdgecachePurge::Client.new   # EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN
#   purge.purge_key("product-42")                          # => "node-1700000000-17"
#   purge.purge_url("https://shop.example/p/42", soft: true)
#   purge.purge_keys(%w[product-42 category-7])            # => {"product-42"=>"...", ...}
#   purge.purge_all                                        # => true
#
# Every failure (HTTP 4xx/5xx, an unexpected answer, a refused connection, a timeout)
# raises EdgecachePurge::Error carrying #status (Integer, nil when no HTTP answer came)
# and #msg (the server's "msg"). Nothing is ever reported as success unless the server
# answered 2xx with the JSON the API promises.

require "json"
require "net/http"
require "uri"

module EdgecachePurge
  VERSION = "1.0.0"

  # The batch endpoint takes at most this many keys; purge_keys splits longer lists.
  MAX_KEYS_PER_REQUEST = 256

  # Raised for every failed purge. status is the HTTP status (nil for network errors and
  # timeouts), msg the server's "msg" (or a description of the local failure), detail the
  # server's "detail" when it sent one.
  class Error < StandardError
    attr_reader :status, :msg, :detail

    def initialize(status, msg, detail = nil)
      @status = status
      @msg = msg
      @detail = detail
      text = status ? "edgecache purge failed: HTTP #{status}: #{msg}" : "edgecache purge failed: #{msg}"
      text += " (#{detail})" if detail && !detail.empty?
      super(text)
    end
  end

  # Errors that mean "no usable HTTP answer": turned into Error with status nil.
  NETWORK_ERRORS = [
    Timeout::Error, SocketError, SystemCallError, IOError, EOFError,
    Net::ProtocolError, Net::HTTPBadResponse
  ].freeze

  # The client. Thread-safe: it holds only configuration and opens one connection per call.
  class Client
    attr_reader :url, :service, :connect_timeout, :read_timeout

    # url:     admin API base URL, e.g. "http://127.0.0.1:8081" (default ENV["EDGECACHE_URL"])
    # service: service id (default ENV["EDGECACHE_SERVICE"], else "edgecache")
    # token:   API token sent as Fastly-Key (default ENV["EDGECACHE_TOKEN"])
    # connect_timeout / read_timeout: seconds (default 5 each); read_timeout also bounds writes.
    # Raises ArgumentError when the URL or token is missing or malformed.
    def initialize(url: nil, service: nil, token: nil, connect_timeout: 5, read_timeout: 5)
      url = presence(url) || presence(ENV["EDGECACHE_URL"])
      service = presence(service) || presence(ENV["EDGECACHE_SERVICE"]) || "edgecache"
      token = presence(token) || presence(ENV["EDGECACHE_TOKEN"])
      raise ArgumentError, "edgecache admin URL missing: pass url: or set EDGECACHE_URL" unless url
      raise ArgumentError, "edgecache token missing: pass token: or set EDGECACHE_TOKEN" unless token
      raise ArgumentError, "token contains whitespace or control characters" if token =~ /[ [:cntrl:]]/

      @base = URI.parse(url.sub(%r{/+\z}, ""))
      unless @base.is_a?(URI::HTTP) && @base.host && !@base.host.empty?
        raise ArgumentError, "edgecache admin URL must be http:// or https://, got #{url.inspect}"
      end
      @url = @base.to_s
      @service = service
      @token = token
      @connect_timeout = Float(connect_timeout)
      @read_timeout = Float(read_timeout)
      raise ArgumentError, "timeouts must be positive numbers of seconds" unless @connect_timeout.positive? && @read_timeout.positive?
    end

    # Purge one URL (every variant). Returns the purge id (String).
    def purge_url(url, soft: false)
      single_id(post(EdgecachePurge.url_purge_path(url), soft: soft))
    end

    # Purge every object tagged with surrogate key +key+. Returns the purge id (String).
    def purge_key(key, soft: false)
      check_key(key)
      single_id(post("#{service_path}/purge/#{escape_segment(key)}", soft: soft))
    end

    # Purge several surrogate keys through the batch endpoint, MAX_KEYS_PER_REQUEST per
    # request (longer lists are split; if a later request fails, the earlier ones have
    # already purged). Returns a Hash key => purge id.
    def purge_keys(keys, soft: false)
      keys = Array(keys).uniq
      keys.each { |k| check_key(k) }
      result = {}
      keys.each_slice(MAX_KEYS_PER_REQUEST) do |chunk|
        status, body = post("#{service_path}/purge", soft: soft, json: { "surrogate_keys" => chunk })
        unless body.is_a?(Hash) && body.all? { |k, v| k.is_a?(String) && v.is_a?(String) }
          raise Error.new(status, "unexpected response to batch purge: #{body.inspect[0, 200]}")
        end
        result.merge!(body)
      end
      result
    end

    # Purge everything in the service (never soft). Returns true.
    def purge_all
      status, body = post("#{service_path}/purge_all", soft: false)
      unless body.is_a?(Hash) && body["status"] == "ok"
        raise Error.new(status, "unexpected response to purge_all: #{body.inspect[0, 200]}")
      end
      true
    end

    def inspect
      "#<EdgecachePurge::Client url=#{@url} service=#{@service}>"
    end

    private

    def presence(value)
      value = value.to_s
      value.empty? ? nil : value
    end

    def service_path
      "/service/#{escape_segment(@service)}"
    end

    def check_key(key)
      unless key.is_a?(String) && !key.empty? && key !~ /[ [:cntrl:]]/
        raise ArgumentError, "surrogate key must be a non-empty String without whitespace, got #{key.inspect}"
      end
    end

    def escape_segment(text)
      text.b.gsub(/[^A-Za-z0-9\-._~]/n) { |c| format("%%%02X", c.ord) }
    end

    def single_id(answer)
      status, body = answer
      id = body.is_a?(Hash) ? body["id"] : nil
      raise Error.new(status, "unexpected response (no purge id): #{body.inspect[0, 200]}") unless id.is_a?(String) && !id.empty?

      id
    end

    # POST to the admin API; returns [status, parsed JSON body] for a 2xx JSON answer and
    # raises Error for everything else.
    def post(path, soft:, json: nil)
      request = Net::HTTP::Post.new(@base.path + path)
      request["Fastly-Key"] = @token
      request["Accept"] = "application/json"
      request["User-Agent"] = "edgecache-purge-ruby/#{VERSION}"
      request["Fastly-Soft-Purge"] = "1" if soft
      if json
        request["Content-Type"] = "application/json"
        request.body = JSON.generate(json)
      else
        # Net::HTTP always sends a (here empty) body with a POST and, without a type, warns
        # that it defaults to the form type: say so explicitly.
        request["Content-Type"] = "application/x-www-form-urlencoded"
        request.body = ""
      end

      http = Net::HTTP.new(@base.hostname, @base.port)
      http.use_ssl = @base.scheme == "https"
      http.open_timeout = @connect_timeout
      http.read_timeout = @read_timeout
      http.write_timeout = @read_timeout if http.respond_to?(:write_timeout=)
      http.max_retries = 0 if http.respond_to?(:max_retries=) # a purge is sent at most once
      response = begin
        http.start { |conn| conn.request(request) }
      rescue *NETWORK_ERRORS, *ssl_errors => e
        raise Error.new(nil, "POST #{@url}#{path}: #{e.class}: #{e.message}")
      end

      status = response.code.to_i
      body = parse_json(response.body)
      unless status.between?(200, 299)
        msg = body.is_a?(Hash) && body["msg"].is_a?(String) ? body["msg"] : fallback_message(response)
        detail = body.is_a?(Hash) && body["detail"].is_a?(String) ? body["detail"] : nil
        raise Error.new(status, msg, detail)
      end
      raise Error.new(status, "response is not JSON: #{response.body.to_s[0, 200].inspect}") if body.nil?

      [status, body]
    end

    def ssl_errors
      defined?(OpenSSL::SSL::SSLError) ? [OpenSSL::SSL::SSLError] : []
    end

    def parse_json(text)
      return nil if text.nil? || text.empty?

      JSON.parse(text)
    rescue JSON::ParserError
      nil
    end

    def fallback_message(response)
      text = response.body.to_s.strip[0, 200]
      text.nil? || text.empty? ? response.message.to_s : text
    end
  end

  # The admin path that purges +url+: the scheme and fragment are dropped and the host
  # lower-cased ("https://Example.com/a/b?x" => "/purge/example.com/a/b?x"); bytes that may
  # not appear in a URL are percent-encoded, existing %XX escapes are kept.
  def self.url_purge_path(url)
    raise ArgumentError, "url must be a String, got #{url.inspect}" unless url.is_a?(String)

    rest = url.strip.sub(/#.*\z/m, "")
    rest = rest.sub(%r{\A[A-Za-z][A-Za-z0-9+.\-]*://}, "").sub(%r{\A//}, "")
    host, sep, tail = rest.partition(%r{[/?]})
    host = host.sub(/\A.*@/, "").downcase
    raise ArgumentError, "url must include a host, got #{url.inspect}" if host.empty? || host =~ /[ [:cntrl:]]/

    tail = sep == "?" ? "/?#{tail}" : "/#{tail}"
    tail = tail.b.gsub(/[^A-Za-z0-9\-._~:\/?\[\]@!$&'()*+,;=%]/n) { |c| format("%%%02X", c.ord) }
    "/purge/#{host}#{tail}"
  end
end
