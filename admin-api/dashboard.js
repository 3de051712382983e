/*
 * admin-api/dashboard.js: the live dashboard's code (the page is dashboard.html; both are
 * served from the binary by dashboard.c under a Content-Security-Policy that allows only
 * this listener, so nothing here is inline and nothing comes from elsewhere).
 *
 * It reads, with the tab's token (Fastly-Key):
 *   GET /v1/channel/<sid>/ts/<t>  once a second: Fastly's real-time shape, one record per
 *                                 second ({recorded, aggregated, datacenter: {<node>: ...}});
 *                                 the first read asks for the last 120 s (ts/h), later ones
 *                                 for what followed the Timestamp of the previous answer (a
 *                                 long poll: it answers when the next second is complete).
 *                                 Every figure that moves comes from these records;
 *   GET /stats                    each second, with the records: what they lack (counters
 *                                 since start, budgets, the backends' addresses and probes;
 *                                 its SLA summary of the month is kept by the server until
 *                                 the history changes, so the call is cheap);
 *   GET /stats/service/<sid>      once a minute: the last 24 h, by minute.
 *
 * Invariants: the token lives in sessionStorage (this tab) and nowhere else; every failure
 * (network, 401, 403, 5xx, a body that is not JSON) ends as a message in the page, never as
 * an exception or a console error; answers that arrive after the token changed are dropped
 * (`epoch`). All text from the server is put in the page with textContent, never as HTML.
 */
'use strict';

(function () {
  const WINDOW_S = 120;            /* the real-time charts' span */
  const POLL_MS = 1000;
  const STATS_MS = POLL_MS;        /* how often /stats is read again */
  const HISTORY_MS = 60000;        /* how often the 24 h history is read again */
  const TOKEN_KEY = 'edgecache.dashboard.token';
  const COLORS = { requests: '#2458d3', hits: '#1b7f3b', miss: '#d97706', pass: '#7c3aed',
                   errors: '#b42318', bandwidth: '#0e7490', ratio: '#1b7f3b' };

  const $ = (id) => document.getElementById(id);
  const meta = document.querySelector('meta[name="edgecache-service"]');
  const SERVICE = meta ? meta.content : 'edgecache';
  const SID = encodeURIComponent(SERVICE);

  let token = null;
  let epoch = 0;                   /* bumped when the token changes: late answers are dropped */
  let timer = null;
  let rtTimestamp = null;          /* the real-time API's Timestamp to ask from next */
  let records = [];                /* real-time records of the last WINDOW_S seconds, oldest first */
  let statsDoc = null, statsAt = 0; /* the latest /stats answer, and when it was asked for */
  let history = null, historyAt = 0;

  /* ---------------------------------------------------------------- small helpers */

  function store(get, value) {
    try {
      if (get) return window.sessionStorage.getItem(TOKEN_KEY);
      if (value === null) window.sessionStorage.removeItem(TOKEN_KEY);
      else window.sessionStorage.setItem(TOKEN_KEY, value);
    } catch (e) { /* storage disabled: the token lives in this page only */ }
    return null;
  }

  function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }

  function setText(id, text) { const el = $(id); if (el && el.textContent !== text) el.textContent = text; }

  function fmtInt(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    return Math.round(v).toLocaleString('en-US');
  }

  function fmtRate(v) {
    if (v === null || !isFinite(v)) return '–';
    if (v >= 100 || Number.isInteger(v)) return fmtInt(v);
    return v.toFixed(1);
  }

  /* an axis label: whole numbers grouped, fractions to two places at most */
  function fmtAxis(v) {
    return Number.isInteger(v) ? fmtInt(v) : String(Math.round(v * 100) / 100);
  }

  function fmtBytes(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function fmtPct(part, whole) {
    if (!whole) return '–';
    return (100 * part / whole).toFixed(1) + '%';
  }

  function fmtMs(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (v >= 100) return Math.round(v) + ' ms';
    if (v >= 1) return v.toFixed(1) + ' ms';
    return (v * 1000).toFixed(v >= 0.01 ? 0 : 1) + ' µs';
  }

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(num(s)));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    return m + 'm ' + (s % 60) + 's';
  }

  function element(tag, text, cls) {
    const el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }

  function row(cells) {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const cell = element(i === 0 ? 'th' : 'td');
      if (c instanceof Node) cell.appendChild(c);
      else cell.textContent = c;
      tr.appendChild(cell);
    });
    return tr;
  }

  function fillRows(id, rows) {
    const body = $(id);
    if (!body) return;
    body.replaceChildren(...rows);
  }

  /* ---------------------------------------------------------------- messages and state */

  function showMessage(text, kind) {
    const m = $('msg');
    m.textContent = text;
    m.className = kind === 'info' ? 'msg info' : 'msg';
    m.hidden = !text;
  }

  function setConn(text, cls) {
    const c = $('conn');
    c.textContent = text;
    c.className = 'conn ' + cls;
  }

  function showLogin(message) {
    stop();
    token = null;
    store(false, null);
    $('main').hidden = true;
    $('signout').hidden = true;
    $('login').hidden = false;
    setConn('not connected', message ? 'conn-err' : 'conn-off');
    showMessage(message || '', 'error');
    $('token').value = '';
    $('token').focus();
  }

  function start(newToken) {
    stop();
    token = newToken;
    epoch++;
    rtTimestamp = null;
    records = [];
    statsDoc = null;
    statsAt = 0;
    history = null;
    historyAt = 0;
    $('login').hidden = true;
    $('main').hidden = false;
    $('signout').hidden = false;
    showMessage('', 'error');
    setConn('connecting', 'conn-off');
    poll(epoch);
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    epoch++;
  }

  /* ---------------------------------------------------------------- the API */

  class ApiError extends Error {
    constructor(status, path, body) {
      super('HTTP ' + status);
      this.status = status;
      this.path = path;
      this.body = body;
    }
  }

  async function api(path) {
    let res;
    try {
      res = await fetch(path, { headers: { 'Fastly-Key': token }, cache: 'no-store', credentials: 'omit',
                                redirect: 'error' });
    } catch (e) {
      throw new ApiError(0, path, null);
    }
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) throw new ApiError(res.status, path, body);
    if (body === null || typeof body !== 'object') throw new ApiError(-1, path, null);
    return body;
  }

  function describe(err) {
    if (!(err instanceof ApiError)) return String(err && err.message || err);
    const detail = err.body && typeof err.body === 'object'
      ? [err.body.msg, err.body.detail].filter((s) => typeof s === 'string').join(': ') : '';
    if (err.status === 0) return 'cannot reach the admin API (' + err.path + ')';
    if (err.status === -1) return 'the answer to ' + err.path + ' is not a JSON object';
    return err.path + ' answered ' + err.status + (detail ? ' (' + detail + ')' : '');
  }

  /* One poll: the real-time records (and /stats when it is due) together, then the history
   * when it is due.
   * 401 and 403 end polling with the login form and a message; anything else is shown and
   * retried on the next tick. */
  async function poll(my) {
    const began = Date.now();
    try {
      const rtPath = '/v1/channel/' + SID + '/ts/' + (rtTimestamp === null ? 'h' : String(rtTimestamp));
      /* both answers, then the failure that matters most: a refused token first */
      const wantStats = Date.now() - statsAt >= STATS_MS;
      const got = await Promise.allSettled(wantStats ? [api(rtPath), api('/stats')] : [api(rtPath)]);
      if (my !== epoch) return;
      const failed = got.filter((g) => g.status === 'rejected').map((g) => g.reason);
      if (failed.length) {
        const rank = (e) => (e instanceof ApiError && e.status === 401 ? 0 : e instanceof ApiError && e.status === 403 ? 1 : 2);
        throw failed.sort((a, b) => rank(a) - rank(b))[0];
      }
      takeRealtime(got[0].value);
      if (wantStats) {
        statsDoc = got[1].value;
        statsAt = Date.now();
      }
      if (Date.now() - historyAt >= HISTORY_MS) {
        historyAt = Date.now();
        try {
          const h = await api('/stats/service/' + SID + '?' + historyQuery());
          if (my !== epoch) return;
          history = historyRows(h);
        } catch (e) {
          if (my !== epoch) return;
          historyAt = Date.now() - HISTORY_MS + 5000; /* try again in 5 s */
          throw e;
        }
      }
      render();
      showMessage('', 'error');
      setConn('live', 'conn-on');
    } catch (err) {
      if (my !== epoch) return;
      if (err instanceof ApiError && err.status === 401) {
        showLogin('The token was not accepted (401 Unauthorized): it is unknown, revoked or mistyped. Enter a valid token.');
        return;
      }
      if (err instanceof ApiError && err.status === 403) {
        showLogin('This token may not read statistics (403 Forbidden): the dashboard needs a token with the global or ' +
                  'global:read scope.');
        return;
      }
      setConn(err instanceof ApiError && err.status === 0 ? 'offline' : 'error', 'conn-err');
      showMessage('No new figures: ' + describe(err) + '. Retrying every second.', 'error');
      render();
    }
    /* at most one poll a second; a long-polled answer that took the second already goes on at once */
    if (my === epoch) timer = setTimeout(() => poll(my), Math.max(0, POLL_MS - (Date.now() - began)));
  }

  function historyQuery() {
    const to = Math.floor(Date.now() / 1000);
    return 'from=' + (to - 86400) + '&to=' + to + '&by=minute';
  }

  /* ---------------------------------------------------------------- the figures */

  function takeRealtime(rt) {
    if (typeof rt.Timestamp === 'number') rtTimestamp = rt.Timestamp;
    const data = Array.isArray(rt.Data) ? rt.Data : [];
    const byTime = new Map(records.map((r) => [r.recorded, r]));
    for (const r of data) {
      if (r && typeof r.recorded === 'number' && r.aggregated && typeof r.aggregated === 'object')
        byTime.set(r.recorded, r);
    }
    const all = Array.from(byTime.values()).sort((a, b) => a.recorded - b.recorded);
    const newest = all.length ? all[all.length - 1].recorded : 0;
    records = all.filter((r) => r.recorded > newest - WINDOW_S);
  }

  function sum(rs, field, pick) {
    let t = 0;
    for (const r of rs) t += num((pick ? pick(r) : r.aggregated)[field]);
    return t;
  }

  /* A histogram {"<upper bound>": count, ..., "+Inf": count} summed over records, as
   * [[upper bound in ms, count], ...] sorted. `specs` are [field, ms per unit] in order of
   * preference: edgecache's µs histograms, then Fastly's miss_histogram (10 ms buckets);
   * the first field a record has is the one read. */
  function mergedHistogram(rs, specs) {
    const out = new Map();
    for (const r of rs) {
      for (const [name, scale] of specs) {
        const h = r.aggregated[name];
        if (!h || typeof h !== 'object') continue;
        for (const k of Object.keys(h)) {
          const ub = k === '+Inf' ? Infinity : Number(k) * scale, c = num(h[k]);
          if (!isNaN(ub) && ub >= 0 && c > 0) out.set(ub, (out.get(ub) || 0) + c);
        }
        break;
      }
    }
    return Array.from(out.entries()).sort((a, b) => a[0] - b[0]);
  }

  /* the q-quantile, linear within its bucket (as Prometheus's histogram_quantile); in the
   * open last bucket, that bucket's lower bound */
  function percentile(buckets, q) {
    let total = 0;
    for (const [, c] of buckets) total += c;
    if (!total) return null;
    let acc = 0, lower = 0;
    for (const [ub, c] of buckets) {
      if (acc + c >= q * total) {
        if (!isFinite(ub)) return lower;
        return lower + (ub - lower) * ((q * total - acc) / c);
      }
      acc += c;
      lower = ub;
    }
    return lower;
  }

  function renderLatency(kind, specs, timeField, countField) {
    const buckets = mergedHistogram(records, specs);
    for (const q of [50, 95, 99]) {
      const v = percentile(buckets, q / 100);
      setText('lat-' + kind + '-p' + q, v === null ? '–' : fmtMs(v));
    }
    const n = sum(records, countField);
    setText('lat-' + kind + '-mean', n ? fmtMs(1000 * sum(records, timeField) / n) : '–');
  }

  function render() {
    const last = records.length ? records[records.length - 1] : null;
    const la = last ? last.aggregated : {};
    const s = statsDoc;

    setText('rps', last ? fmtRate(num(la.requests)) : '–');
    const wh = sum(records, 'hits'), wm = sum(records, 'miss');
    setText('hit-ratio', fmtPct(wh, wh + wm));
    setText('bandwidth', last ? fmtBytes(num(la.bandwidth)) + '/s' : '–');
    setText('eps', last ? fmtRate(num(la.errors)) : '–');
    /* edgecache's records count purges and their time (seconds) in each second */
    const purges = sum(records, 'purges');
    setText('purges-rate', last ? fmtRate(num(la.purges)) : '–');
    setText('purge-latency', purges ? fmtMs(1000 * sum(records, 'purge_time') / purges) : '–');

    for (const f of ['requests', 'hits', 'miss', 'pass', 'errors', 'purges']) {
      setText('sec-' + f, last ? fmtInt(num(la[f])) : '–');
      setText('win-' + f, records.length ? fmtInt(sum(records, f)) : '–');
    }
    for (const f of ['requests', 'hits', 'miss', 'pass', 'errors']) setText('total-' + f, s ? fmtInt(num(s[f])) : '–');
    if (s && s.purges && typeof s.purges === 'object') {
      let n = 0;
      for (const k of Object.keys(s.purges)) n += num(s.purges[k] && s.purges[k].count);
      setText('total-purges', fmtInt(n));
    }
    const statusRows = [];
    for (let k = 1; k <= 5; k++) {
      const f = 'status_' + k + 'xx';
      statusRows.push(row([k + 'xx', last ? fmtInt(num(la[f])) : '–', records.length ? fmtInt(sum(records, f)) : '–',
                           s ? fmtInt(num(s[f])) : '–']));
      statusRows[k - 1].id = 'status-' + k + 'xx';
    }
    fillRows('status-rows', statusRows);

    renderLatency('hit', [['hits_histogram_us', 0.001]], 'hits_time', 'hits');
    renderLatency('miss', [['miss_histogram_us', 0.001], ['miss_histogram', 1]], 'miss_time', 'miss');

    /* memory and disk: the newest second's gauges, else /stats's */
    const mem = (s && s.memory) || {}, disk = (s && s.disk) || {};
    const gauge = (rtField, doc, field) => (typeof la[rtField] === 'number' ? la[rtField] : s ? num(doc[field]) : null);
    setText('mem-objects', fmtInt(gauge('objects_in_memory', mem, 'objects')));
    setText('mem-bytes', fmtBytes(gauge('bytes_in_memory', mem, 'bytes')));
    setText('disk-objects', fmtInt(gauge('objects_on_disk', disk, 'objects')));
    setText('disk-bytes', fmtBytes(gauge('bytes_on_disk', disk, 'bytes')));
    if (s) {
      setText('mem-budget', fmtBytes(num(mem.budget)));
      setText('disk-budget', fmtBytes(num(disk.budget)));
      renderBackends(Array.isArray(s.backends) ? s.backends : []);
      const node = [typeof s.version === 'string' ? 'version ' + s.version : '', 'service ' + SERVICE,
                    'up ' + fmtDuration(s.uptime)].filter(Boolean).join(' · ');
      setText('node', node);
    }
    renderNodes();
    renderCharts();
    setText('foot', last ? 'last full second: ' + new Date(last.recorded * 1000).toISOString().replace('.000Z', 'Z') : '');
  }

  /* the backends /stats lists, with the health and traffic of the newest seconds when the
   * records carry them (edgecache's `backends`: {<name>: {healthy, requests, errors}}) */
  function renderBackends(list) {
    const live = (r) => (r && r.aggregated.backends && typeof r.aggregated.backends === 'object' ? r.aggregated.backends : {});
    const last = records.length ? live(records[records.length - 1]) : {};
    const rows = list.map((b) => {
      const name = String(b && b.name || '?');
      const now = Object.prototype.hasOwnProperty.call(last, name) ? last[name] || {} : null;
      const healthy = now ? now.healthy === true : b && b.healthy === true;
      const probe = b && typeof b.last_probe_latency_ms === 'number' ? fmtMs(b.last_probe_latency_ms) : '–';
      const health = element('span', healthy ? 'healthy' : 'unhealthy', healthy ? 'up' : 'down');
      let errors = 0;
      for (const r of records) errors += num((live(r)[name] || {}).errors);
      return row([name, String(b && b.address || ''), health, now ? fmtRate(num(now.requests)) : '–',
                  records.length ? fmtInt(errors) : '–', fmtInt(num(b && b.requests)), b && b.healthcheck ? probe : 'no check']);
    });
    if (!rows.length) rows.push(row(['no backends', '', '', '', '', '', '']));
    fillRows('backend-rows', rows);
  }

  function renderNodes() {
    const names = new Set();
    for (const r of records) {
      if (r.datacenter && typeof r.datacenter === 'object') for (const k of Object.keys(r.datacenter)) names.add(k);
    }
    $('nodes').hidden = names.size < 2;
    if (names.size < 2) return;
    const last = records[records.length - 1];
    const rows = Array.from(names).sort().map((n) => {
      const pick = (r) => (r.datacenter && r.datacenter[n]) || {};
      const cur = pick(last);
      const h = sum(records, 'hits', pick), m = sum(records, 'miss', pick);
      const backends = cur.backends && typeof cur.backends === 'object' ? cur.backends : {};
      const down = Object.keys(backends).filter((b) => !(backends[b] && backends[b].healthy === true));
      const health = element('span', Object.keys(backends).length === 0 ? '–' : down.length ? 'down: ' + down.join(', ')
        : 'all ' + Object.keys(backends).length + ' healthy', down.length ? 'down' : 'up');
      return row([n, fmtRate(num(cur.requests)), fmtPct(h, h + m), fmtInt(sum(records, 'errors', pick)),
                  fmtBytes(num(cur.bandwidth)) + '/s', fmtInt(num(cur.objects_in_memory)),
                  fmtInt(num(cur.objects_on_disk)), health]);
    });
    fillRows('node-rows', rows);
  }

  /* ---------------------------------------------------------------- history */

  function historyRows(doc) {
    let data = doc && doc.data;
    if (data && !Array.isArray(data) && typeof data === 'object') data = data[SERVICE]; /* keyed by service id */
    if (!Array.isArray(data)) return [];
    return data.filter((b) => b && typeof b.start_time === 'number').sort((a, b) => a.start_time - b.start_time);
  }

  /* ---------------------------------------------------------------- charts */

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  /* A line chart on a canvas: xs are Unix seconds from x0 to x1; each series {label, color,
   * values}. The canvas's data-points attribute says how many points were drawn. */
  function drawChart(canvas, xs, series, opt) {
    const legend = document.querySelector('.legend[data-for="' + canvas.id + '"]');
    if (legend && legend.childElementCount !== series.length) {
      legend.replaceChildren(...series.map((s) => {
        const item = element('span');
        const sw = element('span', undefined, 'swatch');
        sw.style.background = s.color;
        item.append(sw, s.label);
        return item;
      }));
    }
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w) canvas.width = w;
    if (canvas.height !== h) canvas.height = h;
    const g = canvas.getContext('2d');
    if (!g) return;
    g.clearRect(0, 0, w, h);
    const font = Math.round(11 * dpr);
    g.font = font + 'px system-ui, sans-serif';
    let top = 0;
    for (const s of series) for (const v of s.values) if (isFinite(v) && v > top) top = v;
    if (opt.max !== undefined) top = opt.max;
    else if (opt.bytes) {
      /* a round number of the unit the labels use: 16 KiB, not 19.5 KiB */
      const unit = Math.pow(1024, Math.max(0, Math.min(4, Math.floor(Math.log(Math.max(top, 1)) / Math.log(1024)))));
      top = niceMax(top / unit) * unit;
    } else top = niceMax(top);
    const ticks = [0, 1, 2, 3, 4].map((i) => top * i / 4);
    const padL = Math.ceil(Math.max(...ticks.map((v) => g.measureText(opt.fmtY(v)).width))) + 8 * dpr;
    const padR = 8 * dpr;
    const padT = 6 * dpr, padB = font + 8 * dpr;
    const pw = w - padL - padR, ph = h - padT - padB;
    if (pw <= 0 || ph <= 0) return;
    const x0 = opt.x0, x1 = opt.x1;
    const X = (t) => padL + (x1 > x0 ? (t - x0) / (x1 - x0) : 1) * pw;
    const Y = (v) => padT + ph - Math.min(1, v / top) * ph;

    g.strokeStyle = '#dfe3ea';
    g.fillStyle = '#5d6576';
    g.lineWidth = 1;
    g.textBaseline = 'middle';
    g.textAlign = 'right';
    for (const v of ticks) {
      const y = Math.round(Y(v)) + 0.5;
      g.beginPath();
      g.moveTo(padL, y);
      g.lineTo(w - padR, y);
      g.stroke();
      g.fillText(opt.fmtY(v), padL - 4 * dpr, y);
    }
    g.textBaseline = 'top';
    for (let i = 0; i <= 4; i++) {
      const t = x0 + (x1 - x0) * i / 4;
      g.textAlign = i === 0 ? 'left' : i === 4 ? 'right' : 'center';
      g.fillText(opt.fmtX(t), X(t), h - padB + 4 * dpr);
    }

    let points = 0;
    g.lineWidth = 2 * dpr;
    g.lineJoin = 'round';
    for (const s of series) {
      g.strokeStyle = s.color;
      g.fillStyle = s.color;
      g.beginPath();
      for (let i = 0; i < xs.length; i++) {
        const v = s.values[i];
        if (!isFinite(v)) continue;
        const px = X(xs[i]), py = Y(v);
        const joined = i > 0 && isFinite(s.values[i - 1]);
        if (joined) g.lineTo(px, py);
        else g.moveTo(px, py);
        points++;
        if (!joined && !(i + 1 < xs.length && isFinite(s.values[i + 1]))) {
          /* a point alone (one second of traffic, one history bucket) is a dot, not nothing */
          g.stroke();
          g.beginPath();
          g.arc(px, py, 2.5 * dpr, 0, 2 * Math.PI);
          g.fill();
          g.beginPath();
        }
      }
      g.stroke();
    }
    if (!points) {
      g.fillStyle = '#5d6576';
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillText(opt.empty || 'no data yet', padL + pw / 2, padT + ph / 2);
    }
    canvas.dataset.points = String(points);
  }

  function clock(t) {
    const d = new Date(t * 1000);
    return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
  }

  function renderCharts() {
    const newest = records.length ? records[records.length - 1].recorded : Math.floor(Date.now() / 1000) - 1;
    const xs = records.map((r) => r.recorded);
    const col = (f) => records.map((r) => num(r.aggregated[f]));
    const rt = { x0: newest - WINDOW_S, x1: newest, fmtX: (t) => (t >= newest ? 'now' : '−' + Math.round(newest - t) + ' s') };
    drawChart($('chart-requests'), xs, [
      { label: 'requests', color: COLORS.requests, values: col('requests') },
      { label: 'hits', color: COLORS.hits, values: col('hits') },
      { label: 'misses', color: COLORS.miss, values: col('miss') },
      { label: 'passes', color: COLORS.pass, values: col('pass') },
    ], Object.assign({ fmtY: fmtAxis }, rt));
    drawChart($('chart-bandwidth'), xs, [{ label: 'bytes/s', color: COLORS.bandwidth, values: col('bandwidth') }],
              Object.assign({ fmtY: (v) => fmtBytes(v), bytes: true }, rt));
    const mean = (tf, cf) => records.map((r) => {
      const n = num(r.aggregated[cf]);
      return n ? 1000 * num(r.aggregated[tf]) / n : NaN;
    });
    drawChart($('chart-latency'), xs, [
      { label: 'hits', color: COLORS.hits, values: mean('hits_time', 'hits') },
      { label: 'misses', color: COLORS.miss, values: mean('miss_time', 'miss') },
    ], Object.assign({ fmtY: fmtAxis, empty: 'no hits or misses' }, rt));

    const hs = history || [];
    const now = Math.floor(Date.now() / 1000);
    const day = { x0: now - 86400, x1: now, fmtX: clock };
    const hx = hs.map((b) => b.start_time);
    drawChart($('chart-day-requests'), hx, [
      { label: 'requests', color: COLORS.requests, values: hs.map((b) => num(b.requests)) },
      { label: 'hits', color: COLORS.hits, values: hs.map((b) => num(b.hits)) },
      { label: 'misses', color: COLORS.miss, values: hs.map((b) => num(b.miss)) },
    ], Object.assign({ fmtY: fmtAxis }, day));
    drawChart($('chart-day-ratio'), hx, [{
      label: 'hit ratio', color: COLORS.ratio,
      values: hs.map((b) => (num(b.hits) + num(b.miss) ? num(b.hits) / (num(b.hits) + num(b.miss)) : NaN)),
    }], Object.assign({ max: 1, fmtY: (v) => Math.round(v * 100) + '%' }, day));
  }

  /* ---------------------------------------------------------------- start */

  function init() {
    $('login').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token').value.trim();
      if (!t) return;
      store(false, t);
      start(t);
    });
    $('signout').addEventListener('click', () => showLogin(''));
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (token) renderCharts(); }, 100);
    });
    const saved = store(true);
    if (saved) start(saved);
    else showLogin('');
  }

  window.addEventListener('unhandledrejection', (ev) => {
    ev.preventDefault();
    showMessage('Unexpected error: ' + (ev.reason && ev.reason.message || ev.reason), 'error');
  });
  init();
})();
