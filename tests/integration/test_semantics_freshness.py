"""
tests/integration/test_semantics_freshness.py — issue 3, freshness: which source decides a
lifetime (Surrogate-Control, CDN-Cache-Control, s-maxage, max-age, Expires against Date, the
heuristic, --default-ttl, upstream Age), invalid values making a response stale, and
malformed CDN-Cache-Control / Cache-Control / Surrogate-Control fields. The shared helpers
and the timing rules are in semanticsutil.py.
"""

import time

from semanticsutil import SemanticsCase, http_date


class Precedence(SemanticsCase):
    """Every row is primed, checked HIT at once, and checked again after 4.3 s: the winning
    source gives either 60 s (still HIT) or 2 s (refetched) while the losers say the opposite."""

    def test_precedence_table(self):
        o = self.origin()
        now = time.time()
        d = http_date(now)
        long_ago = http_date(now - 10 * 86400)
        rows = [  # (name, headers, fresh after 4.3 s?, edge)
            ("surrogate-control wins (long)",
             {"Surrogate-Control": "max-age=60", "CDN-Cache-Control": "max-age=2",
              "Cache-Control": "s-maxage=2, max-age=2"}, True, 1),
            ("surrogate-control wins (short)",
             {"Surrogate-Control": "max-age=2", "CDN-Cache-Control": "max-age=60",
              "Cache-Control": "s-maxage=60, max-age=60"}, False, 1),
            ("cdn-cache-control wins (long)",
             {"CDN-Cache-Control": "max-age=60", "Cache-Control": "s-maxage=2, max-age=2"}, True, 1),
            ("cdn-cache-control wins (short)",
             {"CDN-Cache-Control": "max-age=2", "Cache-Control": "s-maxage=60, max-age=60"}, False, 1),
            ("s-maxage wins (long)", {"Cache-Control": "s-maxage=60, max-age=2"}, True, 1),
            ("s-maxage wins (short)", {"Cache-Control": "s-maxage=2, max-age=60"}, False, 1),
            ("max-age wins (long)", {"Cache-Control": "max-age=60", "Date": d, "Expires": http_date(now + 2)},
             True, 1),
            ("max-age wins (short)", {"Cache-Control": "max-age=2", "Date": d, "Expires": http_date(now + 60)},
             False, 1),
            ("expires wins (long)", {"Date": d, "Expires": http_date(now + 60), "Last-Modified": http_date(now - 20)},
             True, 1),
            ("expires wins (short)", {"Date": d, "Expires": http_date(now + 2), "Last-Modified": long_ago},
             False, 1),
            ("expires is relative to date", {"Date": http_date(now + 1000), "Expires": http_date(now + 1002)},
             False, 1),
            ("heuristic wins over default_ttl 2", {"Date": d, "Last-Modified": http_date(now - 1000)}, True, 1),
            ("default_ttl 2", {"Date": d}, False, 1),
            ("upstream Age counts", {"Cache-Control": "max-age=60", "Age": "57", "Date": None}, False, 1),
            ("heuristic capped by max_heuristic_ttl 2", {"Date": d, "Last-Modified": long_ago}, False, 2),
            ("default_ttl 60", {"Date": d}, True, 2),
        ]
        e1 = self.edge(o, args=["--default-ttl", "2"])
        e2 = self.edge(o, args=["--default-ttl", "60", "--max-heuristic-ttl", "2"])
        edges = {1: e1, 2: e2}
        paths = {}
        for i, (name, headers, fresh, which) in enumerate(rows):
            path = "/p%d" % i
            paths[name] = path
            h = {"Content-Type": "text/plain", "Date": None}
            h.update(headers)
            o.route(path, headers=h, body=("row " + name).encode())
        for name, headers, fresh, which in rows:
            path = paths[name]
            with self.subTest(row=name, phase="prime"):
                self.assertXCache(self.get(edges[which], path), "MISS")
                r = self.get(edges[which], path)
                self.assertXCache(r, "HIT", "stored and fresh at first")
                if name == "upstream Age counts":
                    self.assertGreaterEqual(r.age or 0, 57, "upstream Age is honoured\n" + r.describe())
        time.sleep(4.3)
        for name, headers, fresh, which in rows:
            path = paths[name]
            with self.subTest(row=name):
                r = self.get(edges[which], path)
                self.assertOk(r, ("row " + name).encode())
                if fresh:
                    self.assertXCache(r, "HIT", name + ": still fresh after 4.3 s")
                    self.assertEqual(o.hits(path), 1)
                else:
                    self.assertXCache(r, "MISS", name + ": stale after 4.3 s")
                    self.assertEqual(o.hits(path), 2)

    def test_invalid_freshness_is_stale(self):
        o = self.origin()
        d = http_date(time.time())
        rows = [
            ("invalid Expires", {"Date": d, "Expires": "0"}),
            ("Expires not a date", {"Date": d, "Expires": "tomorrow"}),
            ("max-age=0", {"Cache-Control": "max-age=0"}),
            ("malformed max-age", {"Cache-Control": "max-age=abc"}),
        ]
        e = self.edge(o)
        for i, (name, headers) in enumerate(rows):
            path = "/inv%d" % i
            o.route(path, headers=dict(headers, **{"Content-Type": "text/plain"}), body=b"x")
            with self.subTest(row=name):
                self.assertOk(self.get(e, path))
                r = self.get(e, path)
                self.assertOk(r)
                self.assertNotHit(r, name + ": stale at once")
                self.assertEqual(o.hits(path), 2, name + ": refetched at once")


class MalformedFreshness(SemanticsCase):
    """Freshness headers an origin got wrong. RFC 9213 2.1: CDN-Cache-Control is an RFC 8941
    Dictionary; one that does not parse, or whose directive has the wrong type, is ignored as
    a whole and Cache-Control decides; a valid one (parameters and repeated lines included)
    replaces Cache-Control. In Cache-Control / Surrogate-Control, broken quoting never hides
    a restrictive directive. Every row is told apart by the second request alone: HIT (stored
    with a long lifetime) or not."""

    def test_invalid_field_falls_back_to_cache_control(self):
        o = self.origin()
        rows = [  # (name, header list, HIT on the second request?)
            ("trailing empty member: cc no-store applies",
             [("CDN-Cache-Control", "max-age=60, ,"), ("Cache-Control", "no-store")], False),
            ("upper-case key: cc no-store applies",
             [("CDN-Cache-Control", "Max-Age=60"), ("Cache-Control", "no-store")], False),
            ("decimal max-age: cc max-age=60 applies",
             [("CDN-Cache-Control", "max-age=1.5"), ("Cache-Control", "max-age=60")], True),
            ("negative max-age: cc max-age=60 applies",
             [("CDN-Cache-Control", "max-age=-1"), ("Cache-Control", "max-age=60")], True),
            ("string max-age: cc no-store applies",
             [("CDN-Cache-Control", 'max-age="60"'), ("Cache-Control", "no-store")], False),
            ("parameters are fine: cdn max-age=60 wins over cc no-store",
             [("CDN-Cache-Control", "max-age=60;a=1"), ("Cache-Control", "no-store")], True),
            ("lines combined, the last max-age wins over cc no-store",
             [("CDN-Cache-Control", "max-age=0"), ("CDN-Cache-Control", "max-age=600"),
              ("Cache-Control", "no-store")], True),
            ("a bad second line spoils the field: cc no-store applies",
             [("CDN-Cache-Control", "max-age=60"), ("CDN-Cache-Control", "s-maxage=?1"),
              ("Cache-Control", "no-store")], False),
        ]
        e = self.edge(o)
        for i, (name, headers, hit) in enumerate(rows):
            path = "/cdn%d" % i
            o.route(path, headers=headers + [("Content-Type", "text/plain")], body=b"row %d" % i)
            with self.subTest(row=name):
                self.assertOk(self.get(e, path), b"row %d" % i)
                r = self.get(e, path)
                self.assertOk(r, b"row %d" % i)
                if hit:
                    self.assertXCache(r, "HIT", name)
                    self.assertEqual(o.hits(path), 1, name)
                else:
                    self.assertNotHit(r, name)
                    self.assertEqual(o.hits(path), 2, name)

    def test_unterminated_quote_in_cache_control_hides_nothing_restrictive(self):
        # where an unclosed quoted-string was meant to end is unknown: a no-store or private
        # after it still counts (Cache-Control and Surrogate-Control alike)
        o = self.origin()
        rows = [
            ("cache-control private", [("Cache-Control", 'max-age=60, community="UCI, private')]),
            ("cache-control no-store", [("Cache-Control", 'max-age=60, ext="a\\", no-store')]),
            ("surrogate-control no-store",
             [("Surrogate-Control", 'max-age=60;edge1="x, no-store'), ("Cache-Control", "max-age=60")]),
        ]
        e = self.edge(o)
        for i, (name, headers) in enumerate(rows):
            path = "/uq%d" % i
            o.route(path, headers=headers + [("Content-Type", "text/plain")], body=b"uq %d" % i)
            with self.subTest(row=name):
                self.assertOk(self.get(e, path), b"uq %d" % i)
                r = self.get(e, path)
                self.assertOk(r, b"uq %d" % i)
                self.assertNotHit(r, name + ": not stored")
                self.assertEqual(o.hits(path), 2, name)


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k semantics_freshness")
