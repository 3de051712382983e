// tests/integration/fastly_js_stats.js — the official `fastly` npm client's HistoricalApi and
// RealtimeApi, unchanged, asked for edgecache's stats; prints one JSON object of what they
// returned, for test_fastly_stats.py to check.
//
//   node fastly_js_stats.js MODULE_DIR BASE_URL TOKEN SERVICE_ID FROM TO
//
// Every operation of the client passes its own base URL (https://api.fastly.com, or
// https://rt.fastly.com for the real-time API) to ApiClient.callApi, which overrides
// ApiClient.basePath; the client's hook to change where a request goes is ApiClient.plugins,
// superagent plugins applied to every request before it is sent. One plugin points both
// hosts at BASE_URL (edgecache's admin listener).
"use strict";

const path = require("path");
const [moduleDir, base, token, sid, from, to] = process.argv.slice(2);
const Fastly = require(path.join(moduleDir, "node_modules", "fastly"));

const client = Fastly.ApiClient.instance;
client.authenticate(token);
client.plugins = [(req) => {
  req.url = req.url.replace(/^https:\/\/(api|rt)\.fastly\.com/, base);
}];

async function main() {
  const hist = new Fastly.HistoricalApi();
  const rt = new Fastly.RealtimeApi();
  const q = { from, to, by: "minute" };
  const out = {};
  out.stats = await hist.getHistStats(q);
  out.service = await hist.getHistStatsService({ service_id: sid, ...q });
  out.aggregate = await hist.getHistStatsAggregated(q);
  out.field = await hist.getHistStatsField({ field: "hits", ...q });
  out.service_field = await hist.getHistStatsServiceField({ service_id: sid, field: "miss", ...q });
  out.regions = await hist.getRegions();
  out.region_local = await hist.getHistStatsService({ service_id: sid, ...q, region: "local" });

  // the client's model of `recorded` is an object without fields, so it drops the second a
  // record covers: the raw body keeps it
  const h = await rt.getStatsLast120SecondsWithHttpInfo({ service_id: sid });
  out.rt_h = h.data;
  out.rt_h_raw = h.response.body;
  out.rt_last = await rt.getStatsLastSecond({ service_id: sid, timestamp_in_seconds: 0 });
  out.rt_limit = await rt.getStatsLast120SecondsLimitEntries({ service_id: sid, max_entries: 3 });
  out.rt_after = await rt.getStatsLastSecond({ service_id: sid, timestamp_in_seconds: out.rt_h.Timestamp });
  try {
    await hist.getHistStatsService({ service_id: "not-this-node", ...q });
    out.wrong_service = "no error";
  } catch (e) {
    out.wrong_service = e.status;
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write("failed: " + (e && e.status ? e.status + " " + JSON.stringify(e.body) : String(e && e.stack || e)) + "\n");
  process.exit(1);
});
