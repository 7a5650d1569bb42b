/* chronik admin UI: plain ES2020, no dependencies, no build step.
 *
 * All data coming from the server is inserted with textContent / attributes,
 * never as HTML. Every page gets a PageCtx that owns its timers and
 * EventSources; they are all stopped when the route changes. */
'use strict';

(() => {
  const enc = encodeURIComponent;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const ALL = '$all';

  // ------------------------------------------------------------------ DOM

  /** Create an element. props: class, text, on<event>, value, checked,
   *  disabled, hidden, dataset; everything else becomes an attribute. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = String(v);
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'value') el.value = String(v);
        else if (k === 'checked' || k === 'disabled' || k === 'hidden') el[k] = Boolean(v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    return el;
  }

  /** Replace the children of el (null/undefined/false children are skipped). */
  function replace(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  function append(parent, ...children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return parent;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const byId = (id) => document.getElementById(id);
  function setText(id, text) {
    const el = byId(id);
    if (el) el.textContent = text === undefined || text === null ? '' : String(text);
    return el;
  }

  // ------------------------------------------------------------ formatting

  const DASH = '–';

  function num(n) {
    return n === undefined || n === null || Number.isNaN(n) ? DASH : String(n);
  }

  function compact(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
    const a = Math.abs(n);
    const trim = (x) => String(Number(x.toFixed(Math.abs(x) >= 100 ? 0 : 1)));
    if (a >= 1e9) return trim(n / 1e9) + 'G';
    if (a >= 1e6) return trim(n / 1e6) + 'M';
    if (a >= 1e4) return trim(n / 1e3) + 'k';
    if (a >= 100 || Number.isInteger(n)) return String(Math.round(n));
    return String(Number(n.toFixed(a >= 10 ? 1 : 2)));
  }

  function rateText(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
    if (x >= 100) return String(Math.round(x));
    return x.toFixed(1);
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function parseTime(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function fmtTime(iso) {
    const d = parseTime(iso);
    if (!d) return iso ? String(iso) : DASH;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtClock(iso, millis) {
    const d = iso instanceof Date ? iso : parseTime(iso);
    if (!d) return iso ? String(iso) : DASH;
    const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return millis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
  }

  function fmtAgo(iso) {
    const d = parseTime(iso);
    if (!d) return iso ? String(iso) : DASH;
    let sec = Math.round((Date.now() - d.getTime()) / 1000);
    if (sec < 0) sec = 0;
    if (sec < 60) return `${sec}s ago`;
    if (sec < 3600) return `${Math.floor(sec / 60)}m ago`;
    if (sec < 86400) return `${Math.floor(sec / 3600)}h ago`;
    return `${Math.floor(sec / 86400)}d ago`;
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
    let t = Math.floor(seconds);
    const d = Math.floor(t / 86400); t -= d * 86400;
    const hh = Math.floor(t / 3600); t -= hh * 3600;
    const m = Math.floor(t / 60); const sec = t - m * 60;
    if (d > 0) return `${d}d ${hh}h ${m}m`;
    if (hh > 0) return `${hh}h ${m}m`;
    if (m > 0) return `${m}m ${sec}s`;
    return `${sec}s`;
  }

  function timeEl(iso, cls) {
    return h('time', { class: cls || 'ts', datetime: iso || undefined, title: iso || undefined, text: fmtTime(iso) });
  }

  function truncate(str, max) {
    return str.length > max ? str.slice(0, max - 1) + '…' : str;
  }

  /** One-line preview of an event's data. */
  function preview(ev, max = 160) {
    if (!ev) return '';
    if (ev.data_encoding === 'hex') {
      const hex = typeof ev.data === 'string' ? ev.data : '';
      return truncate(`hex ${hex.slice(0, 64)}${hex.length > 64 ? '…' : ''} (${Math.floor(hex.length / 2)} bytes)`, max);
    }
    let text;
    try { text = JSON.stringify(ev.data); } catch (_) { text = String(ev.data); }
    if (text === undefined) text = 'null';
    return truncate(text, max);
  }

  function isLink(ev, stream) {
    return stream !== ALL && ev && ev.stream_uuid !== undefined && ev.stream_uuid !== stream;
  }

  const streamHref = (stream) => `#/stream/${enc(stream)}`;
  const eventHref = (stream, n) => `#/event/${enc(stream)}/${n}`;
  const liveHref = (stream) => `#/live/${enc(stream)}`;
  const subHref = (stream, name) => `#/subscription/${enc(stream)}/${enc(name)}`;

  function badge(text, kind, extra) {
    return h('span', Object.assign({ class: `badge badge-${kind || 'neutral'}`, text }, extra || {}));
  }

  const STATUS_KIND = { active: 'green', deleted: 'amber', tombstoned: 'red' };
  function statusBadge(status) {
    return badge(status || 'unknown', STATUS_KIND[status] || 'neutral', { title: `stream status: ${status}` });
  }

  const PHASE_KIND = { live: 'green', catching_up: 'amber', waiting: 'neutral' };
  const PHASE_TEXT = { live: 'live', catching_up: 'catching up', waiting: 'waiting' };

  /** Pretty-printed JSON with syntax colouring; textContent stays exactly
   *  JSON.stringify(value, null, 2). */
  function fillJson(pre, value) {
    pre.replaceChildren();
    let text;
    try { text = JSON.stringify(value, null, 2); } catch (_) { text = String(value); }
    if (text === undefined) text = 'null';
    const re = /("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false)\b|\b(null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) pre.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) {
        pre.appendChild(h('span', { class: m[2] !== undefined ? 'j-key' : 'j-str', text: m[1] }));
        if (m[2] !== undefined) pre.appendChild(document.createTextNode(m[2]));
      } else if (m[3] !== undefined) {
        pre.appendChild(h('span', { class: 'j-bool', text: m[3] }));
      } else if (m[4] !== undefined) {
        pre.appendChild(h('span', { class: 'j-null', text: m[4] }));
      } else {
        pre.appendChild(h('span', { class: 'j-num', text: m[5] }));
      }
      last = re.lastIndex;
    }
    if (last < text.length) pre.appendChild(document.createTextNode(text.slice(last)));
  }

  function hexToUtf8(hex) {
    if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex) || hex.length === 0) return null;
    const bytes = new Uint8Array(hex.length / 2);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
    try {
      const str = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u0008\u000e-\u001f]/.test(str)) return null;
      return str;
    } catch (_) {
      return null;
    }
  }

  // ---------------------------------------------------------- error banner

  let errorKey = null;

  function showError(message, key) {
    const box = byId('error');
    if (!box) return;
    setText('error-message', message || 'Unknown error');
    box.hidden = false;
    errorKey = key || 'action';
  }

  function showApiError(err, key) {
    if (err instanceof Cancelled) return;
    showError(err && err.message ? err.message : String(err), key);
    setText('error-kind', err && err.kind && err.kind !== 'http' ? err.kind : '');
  }

  function clearError(key) {
    if (key && errorKey !== key) return;
    const box = byId('error');
    if (box) box.hidden = true;
    setText('error-message', '');
    setText('error-kind', '');
    errorKey = null;
  }

  // -------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(message, status, kind) {
      super(message);
      this.status = status;
      this.kind = kind;
    }
  }

  class Cancelled extends Error {}

  async function api(method, path, body) {
    const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(`Network error: cannot reach the server (${(e && e.message) || e})`, 0, 'network');
    }
    let text = '';
    try {
      text = await res.text();
    } catch (e) {
      throw new ApiError(`Network error while reading the response (${(e && e.message) || e})`, 0, 'network');
    }
    let json = null;
    let parsed = false;
    if (text) {
      try { json = JSON.parse(text); parsed = true; } catch (_) { /* not JSON */ }
    }
    if (!res.ok) {
      const err = parsed && json && typeof json === 'object' ? json.error : null;
      const msg = err && err.message
        ? String(err.message)
        : `HTTP ${res.status} ${res.statusText || ''}`.trim() + (text && !parsed ? `: ${truncate(text, 200)}` : '');
      throw new ApiError(msg, res.status, (err && err.kind) || 'http');
    }
    if (text && !parsed) throw new ApiError(`Invalid JSON in the response of ${path}`, res.status, 'invalid_response');
    return json;
  }

  // --------------------------------------------------------- page context

  class PageCtx {
    constructor() {
      this.alive = true;
      this.timers = new Set();
      this.sources = new Set();
      this.cleanups = [];
    }

    timeout(fn, ms) {
      const id = setTimeout(() => {
        this.timers.delete(id);
        if (this.alive) fn();
      }, ms);
      this.timers.add(id);
      return id;
    }

    cancel(id) {
      clearTimeout(id);
      this.timers.delete(id);
    }

    /** Run fn now and then every `ms` (without overlapping). Returns a
     *  function that triggers an immediate extra run. */
    poll(fn, ms, key) {
      let pending = null;
      let running = false;
      const tick = async () => {
        if (!this.alive) return;
        if (running) return;
        running = true;
        if (pending !== null) { this.cancel(pending); pending = null; }
        const started = Date.now();
        try {
          await fn();
          clearError(key);
        } catch (e) {
          showApiError(e, key);
        }
        running = false;
        if (this.alive) pending = this.timeout(() => { pending = null; tick(); }, Math.max(50, ms - (Date.now() - started)));
      };
      tick();
      return tick;
    }

    eventSource(url) {
      const es = new EventSource(url);
      this.sources.add(es);
      return es;
    }

    closeSource(es) {
      es.close();
      this.sources.delete(es);
    }

    on(target, event, fn, opts) {
      target.addEventListener(event, fn, opts);
      this.cleanups.push(() => target.removeEventListener(event, fn, opts));
    }

    async api(method, path, body) {
      if (!this.alive) throw new Cancelled('page closed');
      const r = await api(method, path, body);
      if (!this.alive) throw new Cancelled('page closed');
      return r;
    }

    /** Run an async user action; API errors go to the banner. */
    async run(fn) {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof Cancelled) && this.alive) showApiError(e, 'action');
        return undefined;
      }
    }

    destroy() {
      this.alive = false;
      for (const id of this.timers) clearTimeout(id);
      this.timers.clear();
      for (const es of this.sources) es.close();
      this.sources.clear();
      for (const fn of this.cleanups) { try { fn(); } catch (_) { /* ignore */ } }
      this.cleanups = [];
    }
  }

  // ---------------------------------------------------------------- charts

  function niceScale(max) {
    if (!(max > 0)) max = 1;
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    const top = Math.max(step, step * Math.ceil(max / step - 1e-9));
    return { top, step };
  }

  /** Draw a line chart into an existing <svg> element.
   *  series: [{t: ms, v: number|null}], opts: {tMin, tMax, xTicks:[{t,label}],
   *  minTop, integer, height, color, emptyText} */
  function drawChart(svgEl, series, opts) {
    const parent = svgEl.parentElement;
    const W = Math.max(260, Math.floor((parent && parent.clientWidth) || 600));
    const H = opts.height || 170;
    svgEl.setAttribute('width', W);
    svgEl.setAttribute('height', H);
    svgEl.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svgEl.replaceChildren();

    const padL = 48, padR = 16, padT = 12, padB = 26;
    const iw = W - padL - padR, ih = H - padT - padB;
    const t0 = opts.tMin, t1 = opts.tMax;
    const visible = series.filter((p) => p.v !== null && p.v !== undefined && Number.isFinite(p.v) && p.t >= t0 - 5000);
    let max = Math.max(opts.minTop || 1, ...visible.map((p) => p.v));
    let { top, step } = niceScale(max);
    if (opts.integer && step < 1) { step = 1; top = Math.max(1, Math.ceil(max)); }
    const x = (t) => padL + ((t - t0) / Math.max(1, t1 - t0)) * iw;
    const y = (v) => padT + ih - (Math.min(v, top) / top) * ih;
    const color = opts.color || '#2f5bea';
    const gid = `${svgEl.id || 'chart'}-fill`;
    const cid = `${svgEl.id || 'chart'}-clip`;

    svgEl.appendChild(s('defs', null,
      s('linearGradient', { id: gid, x1: 0, y1: 0, x2: 0, y2: 1 },
        s('stop', { offset: '0%', 'stop-color': color, 'stop-opacity': 0.22 }),
        s('stop', { offset: '100%', 'stop-color': color, 'stop-opacity': 0.02 })),
      s('clipPath', { id: cid }, s('rect', { x: padL, y: padT - 4, width: iw, height: ih + 8 }))));

    for (let v = 0; v <= top + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      svgEl.appendChild(s('line', { x1: padL, x2: W - padR, y1: yy, y2: yy, class: v === 0 ? 'chart-axis' : 'chart-grid' }));
      svgEl.appendChild(s('text', { x: padL - 8, y: yy + 4, 'text-anchor': 'end', class: 'chart-label' }, compact(v)));
    }
    (opts.xTicks || []).forEach((tick, i, arr) => {
      const anchor = i === 0 ? 'start' : i === arr.length - 1 ? 'end' : 'middle';
      svgEl.appendChild(s('text', { x: x(tick.t), y: H - 7, 'text-anchor': anchor, class: 'chart-label' }, tick.label));
    });

    if (visible.length < 2) {
      svgEl.appendChild(s('text', { x: padL + iw / 2, y: padT + ih / 2 + 4, 'text-anchor': 'middle', class: 'chart-empty' },
        opts.emptyText || 'Collecting samples…'));
      return;
    }

    const segments = [[]];
    for (const p of series) {
      if (p.v === null || p.v === undefined || !Number.isFinite(p.v)) {
        if (segments[segments.length - 1].length) segments.push([]);
      } else {
        segments[segments.length - 1].push(p);
      }
    }
    const g = s('g', { 'clip-path': `url(#${cid})` });
    for (const seg of segments) {
      if (seg.length === 0) continue;
      const pts = seg.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      if (seg.length > 1) {
        const area = `M${x(seg[0].t).toFixed(1)},${y(0)} L${pts.join(' L')} L${x(seg[seg.length - 1].t).toFixed(1)},${y(0)} Z`;
        g.appendChild(s('path', { d: area, fill: `url(#${gid})`, stroke: 'none' }));
        g.appendChild(s('path', { d: `M${pts.join(' L')}`, fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' }));
      } else {
        g.appendChild(s('circle', { cx: x(seg[0].t), cy: y(seg[0].v), r: 2, fill: color }));
      }
    }
    svgEl.appendChild(g);
    const lastP = visible[visible.length - 1];
    svgEl.appendChild(s('circle', { cx: x(lastP.t), cy: y(lastP.v), r: 3.5, fill: '#fff', stroke: color, 'stroke-width': 2 }));
  }

  function chartCard(title, unit, svgId, extra) {
    return h('section', { class: 'card chart-card' },
      h('div', { class: 'card-head' },
        h('h2', { class: 'card-title', text: title }),
        h('span', { class: 'card-hint', text: unit }),
        extra || null),
      h('div', { class: 'chart-wrap' }, s('svg', { id: svgId, class: 'chart', role: 'img', 'aria-label': title })));
  }

  // ------------------------------------------------------------ components

  function pageHeader(title, opts = {}) {
    return h('div', { class: 'page-header' },
      opts.crumbs ? h('nav', { class: 'crumbs' }, opts.crumbs.map((c, i) => [
        i > 0 ? h('span', { class: 'crumb-sep', text: '/' }) : null,
        c.href ? h('a', { href: c.href, text: c.text }) : h('span', { text: c.text }),
      ])) : null,
      h('div', { class: 'page-header-row' },
        h('div', { class: 'page-title-block' },
          h('h1', { class: `page-title${opts.mono ? ' mono' : ''}`, id: opts.titleId, text: title }),
          opts.sub ? h('div', { class: 'page-sub' }, opts.sub) : null),
        opts.actions ? h('div', { class: 'page-actions' }, opts.actions) : null));
  }

  function statCard(label, id, opts = {}) {
    return h('section', { class: 'card stat-card' },
      h('div', { class: 'stat-label', text: label }),
      h('div', { class: 'stat-value-row' },
        h('span', { class: 'stat-value', id, text: opts.initial || DASH }),
        opts.unit ? h('span', { class: 'stat-unit', text: opts.unit }) : null),
      h('div', { class: 'stat-sub', id: opts.subId }));
  }

  function table(id, columns, opts = {}) {
    const tbody = h('tbody');
    const t = h('table', { class: `table${opts.cls ? ' ' + opts.cls : ''}`, id },
      h('thead', null, h('tr', null, columns.map((c) => {
        const col = typeof c === 'string' ? { text: c } : c;
        return h('th', { class: col.cls, text: col.text, style: col.width ? `width:${col.width}` : undefined });
      }))),
      tbody);
    return { table: t, tbody };
  }

  function emptyRow(colspan, text) {
    return h('tr', { class: 'empty-row' }, h('td', { colspan, text }));
  }

  function kv(label, value, opts = {}) {
    return [h('dt', { text: label }), h('dd', { class: opts.mono ? 'mono' : undefined, id: opts.id }, value)];
  }

  function lagBadge(lag) {
    const kind = lag === 0 ? 'green' : lag < 1000 ? 'amber' : 'red';
    return h('span', { class: `lag lag-${kind}`, text: num(lag) });
  }

  function ownerText(sub) {
    if (sub.owner_pid === null && !sub.owner_application) return DASH;
    const app = sub.owner_application || 'unknown';
    return sub.owner_pid !== null && sub.owner_pid !== undefined ? `${app} (pid ${sub.owner_pid})` : app;
  }

  // ------------------------------------------------------------- dashboard

  function pageDashboard(ctx, app) {
    const storeSub = h('span', { id: 'store-info', class: 'store-info' });
    append(app, pageHeader('Dashboard', { sub: storeSub }));

    append(app, h('div', { class: 'stat-grid stat-grid-5' },
      statCard('Head position', 'head-position', { subId: 'head-sub' }),
      statCard('Append rate', 'append-rate', { unit: 'events/s', subId: 'rate-sub' }),
      statCard('Avg batch size', 'batch-size', { unit: 'appends/batch', subId: 'batch-sub' }),
      h('section', { class: 'card stat-card' },
        h('div', { class: 'stat-label', text: 'Writer' }),
        h('div', { class: 'stat-value-row' }, h('span', { id: 'writer-state', class: 'stat-value writer-state', text: DASH })),
        h('div', { class: 'stat-sub', id: 'writer-sub' })),
      statCard('Clients', 'clients', { subId: 'clients-sub' })));

    append(app, h('div', { class: 'grid-2' },
      chartCard('Append rate', 'events/s · last 2 min', 'rate-chart', h('span', { class: 'card-aside', id: 'rate-peak' })),
      chartCard('Average batch size', 'appends/batch · last 2 min', 'batch-chart', h('span', { class: 'card-aside', id: 'batch-peak' }))));

    const subsT = table('dash-subscriptions', [
      'Subscription', 'Stream', { text: 'Checkpoint', cls: 'num' },
      { text: 'Lag', cls: 'num' }, { text: 'Parked', cls: 'num' }, 'Owner']);
    subsT.tbody.appendChild(emptyRow(6, 'Loading…'));
    const nodesList = h('ul', { class: 'node-list', id: 'nodes' });
    append(app, h('div', { class: 'grid-main-side' },
      h('section', { class: 'card' },
        h('div', { class: 'card-head' },
          h('h2', { class: 'card-title', text: 'Subscriptions' }),
          h('span', { class: 'card-hint', id: 'dash-subs-count' }),
          h('a', { class: 'card-link', href: '#/subscriptions', text: 'View all →' })),
        h('div', { class: 'table-scroll' }, subsT.table)),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Connections' })),
        h('div', { class: 'pool' },
          h('div', { class: 'pool-row' },
            h('span', { class: 'pool-label', text: 'Database pool' }),
            h('span', { class: 'pool-value mono', id: 'db-pool', text: DASH })),
          h('div', { class: 'meter' }, h('div', { class: 'meter-fill', id: 'db-pool-meter' }))),
        h('div', { class: 'side-subtitle', text: 'Nodes' }),
        nodesList)));

    const WINDOW = 120000;
    const rate = [];
    const batch = [];
    let prev = null;

    const redraw = () => {
      const now = Date.now();
      const xTicks = [
        { t: now - 120000, label: '-2m' }, { t: now - 90000, label: '-90s' }, { t: now - 60000, label: '-1m' },
        { t: now - 30000, label: '-30s' }, { t: now, label: 'now' }];
      const rc = byId('rate-chart');
      const bc = byId('batch-chart');
      if (rc) drawChart(rc, rate, { tMin: now - WINDOW, tMax: now, xTicks, minTop: 1, color: '#2f5bea' });
      if (bc) drawChart(bc, batch, { tMin: now - WINDOW, tMax: now, xTicks, minTop: 1, color: '#7c3aed', emptyText: rate.length > 2 ? 'No batches in this window' : 'Collecting samples…' });
      const peak = (arr) => arr.reduce((m, p) => (p.v !== null && p.v > m ? p.v : m), 0);
      setText('rate-peak', rate.length > 1 ? `peak ${rateText(peak(rate))}` : '');
      setText('batch-peak', batch.some((p) => p.v !== null) ? `peak ${compact(peak(batch))}` : '');
    };

    ctx.poll(async () => {
      const ov = await ctx.api('GET', '/api/overview');
      const now = Date.now();
      if (prev && (ov.events_appended < prev.ov.events_appended || ov.batches < prev.ov.batches)) {
        prev = null; rate.length = 0; batch.length = 0; // server restarted
      }
      let r = null;
      let b = null;
      let epb = null;
      if (prev) {
        let dt = ov.uptime_seconds - prev.ov.uptime_seconds;
        if (!(dt > 0.05)) dt = (now - prev.t) / 1000;
        if (dt > 0) r = (ov.events_appended - prev.ov.events_appended) / dt;
        const dB = ov.batches - prev.ov.batches;
        if (dB > 0) {
          b = (ov.batch_appends - prev.ov.batch_appends) / dB;
          epb = (ov.batch_events - prev.ov.batch_events) / dB;
        }
        rate.push({ t: now, v: r });
        batch.push({ t: now, v: b });
      }
      prev = { t: now, ov };
      while (rate.length > 2 && rate[1].t < now - WINDOW) rate.shift();
      while (batch.length > 2 && batch[1].t < now - WINDOW) batch.shift();

      const storeInfo = byId('store-info');
      if (storeInfo) {
        replace(storeInfo,
          h('span', { class: 'mono', text: ov.store || 'store' }),
          h('span', { class: 'dot-sep', text: '·' }),
          badge(ov.backend || '?', 'blue'),
          h('span', { class: 'dot-sep', text: '·' }),
          h('span', { text: `v${ov.version || '?'}` }),
          ov.read_only ? badge('read-only', 'amber') : null,
          h('span', { class: 'dot-sep', text: '·' }),
          h('span', { class: 'muted', text: 'up ' }),
          h('span', { id: 'uptime', class: 'mono', title: `started ${fmtTime(new Date(Date.now() - (ov.uptime_seconds || 0) * 1000).toISOString())}`, text: fmtDuration(ov.uptime_seconds) }));
      }

      setText('head-position', num(ov.head_position));
      setText('head-sub', `${num(ov.streams)} streams · ${num(ov.subscriptions)} subscriptions`);
      setText('append-rate', r === null ? DASH : rateText(r));
      const rs = setText('rate-sub', `${compact(ov.events_appended)} events appended since start`);
      if (rs) rs.title = `${num(ov.events_appended)} events appended since the server started`;
      const cumulative = ov.batches > 0 ? ov.batch_appends / ov.batches : null;
      const cumEpb = ov.batches > 0 ? ov.batch_events / ov.batches : null;
      const bs = b !== null ? b : cumulative;
      setText('batch-size', bs === null ? DASH : bs.toFixed(2));
      setText('batch-sub', b !== null
        ? `${(epb || 0).toFixed(1)} events/batch · last ${Math.max(1, Math.round((now - (rate.length > 1 ? rate[rate.length - 2].t : now - 1000)) / 1000))}s`
        : cumulative !== null ? `cumulative · ${cumEpb.toFixed(1)} events/batch` : 'no batches yet');

      const w = ov.writer || {};
      const ws = byId('writer-state');
      if (ws) {
        const state = w.state || 'unknown';
        ws.className = `stat-value writer-state writer-${state}`;
        const restarts = w.restarts === undefined ? '?' : w.restarts;
        replace(ws,
          h('span', { class: 'state-dot', 'aria-hidden': 'true' }),
          h('span', { text: state }),
          h('span', { class: 'writer-restarts', text: ` · ${restarts} restart${restarts === 1 ? '' : 's'}` }));
      }
      const ap = ov.appends || {};
      const ws2 = byId('writer-sub');
      if (ws2) {
        ws2.title = `appends: ${num(ap.ok)} ok, ${num(ap.rejected)} rejected, ${num(ap.failed)} failed`;
        replace(ws2,
          h('span', { text: `${compact(ap.ok)} ok` }), ' · ',
          h('span', { class: ap.rejected ? 'text-amber' : undefined, text: `${compact(ap.rejected)} rejected` }), ' · ',
          h('span', { class: ap.failed ? 'text-red' : undefined, text: `${compact(ap.failed)} failed` }));
      }

      const conn = ov.connections || {};
      const db = conn.database || {};
      setText('clients', num(conn.clients));
      const inUse = db.size !== undefined && db.idle !== undefined ? db.size - db.idle : null;
      setText('clients-sub', `db pool ${num(inUse)} busy / ${num(db.size)}`);
      setText('db-pool', `${num(inUse)} busy · ${num(db.idle)} idle · ${num(db.size)} open`);
      const meter = byId('db-pool-meter');
      if (meter) meter.style.width = db.size > 0 ? `${Math.round((inUse / db.size) * 100)}%` : '0%';

      const nodes = Array.isArray(conn.nodes) ? conn.nodes : [];
      const nl = byId('nodes');
      if (nl) {
        const key = JSON.stringify(nodes);
        if (nl.dataset.key !== key) {
          nl.dataset.key = key;
          replace(nl, ...(nodes.length === 0
            ? [h('li', { class: 'muted', text: 'No nodes connected' })]
            : nodes.map((n) => h('li', { class: 'node' },
              h('span', { class: 'node-dot', 'aria-hidden': 'true' }),
              h('span', { class: 'node-main' },
                h('span', { class: 'mono node-addr', text: `${n.address}:${n.port}` }),
                h('span', { class: 'node-app', text: n.leader ? 'leader' : 'member' })),
              h('span', { class: 'node-since', title: `joined ${n.joined_at}`, text: fmtAgo(n.joined_at) })))));
        } else {
          nl.querySelectorAll('.node-since').forEach((el, i) => { if (nodes[i]) el.textContent = fmtAgo(nodes[i].joined_at); });
        }
      }
      redraw();
    }, 1000, 'poll:overview');

    ctx.poll(async () => {
      const subs = await ctx.api('GET', '/api/subscriptions');
      const tbody = subsT.tbody;
      const list = Array.isArray(subs) ? subs : [];
      setText('dash-subs-count', `${list.length} total`);
      const shown = list.slice().sort((a, b) => (b.lag - a.lag) || String(a.name).localeCompare(String(b.name))).slice(0, 8);
      replace(tbody, ...(shown.length === 0 ? [emptyRow(6, 'No subscriptions')] : shown.map((sub) => h('tr', { class: 'dash-sub-row' },
        h('td', null, h('a', { href: subHref(sub.stream, sub.name), class: 'strong', text: sub.name })),
        h('td', null, h('a', { href: streamHref(sub.stream), class: 'mono subtle-link', text: sub.stream })),
        h('td', { class: 'num', title: `head ${sub.head}`, text: num(sub.checkpoint) }),
        h('td', { class: 'num' }, lagBadge(sub.lag)),
        h('td', { class: 'num' }, sub.parked > 0 ? badge(num(sub.parked), 'red') : h('span', { class: 'muted', text: '0' })),
        h('td', { class: 'muted owner-cell', title: ownerText(sub), text: sub.owner_application || (sub.owner_pid !== null && sub.owner_pid !== undefined ? `pid ${sub.owner_pid}` : DASH) })))));
    }, 2000, 'poll:subscriptions');

    ctx.on(window, 'resize', redraw);
  }

  // --------------------------------------------------------------- streams

  function metadataSummary(md) {
    if (!md) return null;
    const parts = [];
    if (md.max_count !== null && md.max_count !== undefined) parts.push(`max-count ${md.max_count}`);
    if (md.max_age) parts.push(`max-age ${md.max_age}`);
    if (md.truncate_before !== null && md.truncate_before !== undefined) parts.push(`truncate-before ${md.truncate_before}`);
    if (md.custom !== null && md.custom !== undefined) parts.push('custom');
    return parts.length ? parts.join(' · ') : null;
  }

  function pageStreams(ctx, app, params) {
    let search = params.get('search') || '';
    let page = Math.max(1, parseInt(params.get('page') || '1', 10) || 1);
    let totalPages = 1;
    let seq = 0;

    const input = h('input', {
      type: 'search', id: 'stream-search', class: 'input search-input', placeholder: 'Search streams…',
      autocomplete: 'off', spellcheck: 'false', value: search, 'aria-label': 'Search streams',
    });
    const subtitle = h('span', { id: 'streams-total', text: 'Loading…' });
    append(app, pageHeader('Streams', {
      sub: subtitle,
      actions: [
        h('a', { class: 'btn', href: '#/stream/%24all', id: 'all-stream-link', title: 'All events in global order' },
          h('span', { class: 'mono', text: '$all' })),
        h('a', { class: 'btn', href: '#/live', text: 'Live tail' }),
      ],
    }));

    const t = table('streams-table', [
      { text: 'Stream' }, { text: 'Status', width: '110px' }, { text: 'Version', cls: 'num', width: '110px' },
      { text: 'Created', width: '180px' }, { text: 'Metadata', width: '300px' }]);
    const prevBtn = h('button', { type: 'button', class: 'btn', id: 'prev-page', text: '← Previous' });
    const nextBtn = h('button', { type: 'button', class: 'btn', id: 'next-page', text: 'Next →' });
    const pageInfo = h('span', { class: 'page-info', id: 'page-info', text: '' });

    append(app, h('section', { class: 'card' },
      h('div', { class: 'toolbar' },
        h('div', { class: 'search-box' },
          h('span', { class: 'search-icon', 'aria-hidden': 'true' },
            s('svg', { viewBox: '0 0 20 20', width: 16, height: 16 },
              s('circle', { cx: 8.5, cy: 8.5, r: 5.5, fill: 'none', stroke: 'currentColor', 'stroke-width': 2 }),
              s('line', { x1: 13, y1: 13, x2: 17.5, y2: 17.5, stroke: 'currentColor', 'stroke-width': 2, 'stroke-linecap': 'round' }))),
          input),
        h('div', { class: 'toolbar-spacer' }),
        h('div', { class: 'pager' }, prevBtn, pageInfo, nextBtn)),
      h('div', { class: 'table-scroll' }, t.table)));
    t.tbody.appendChild(emptyRow(5, 'Loading…'));

    const updateHash = () => {
      const q = [];
      if (search) q.push(`search=${enc(search)}`);
      if (page > 1) q.push(`page=${page}`);
      history.replaceState(null, '', `#/streams${q.length ? '?' + q.join('&') : ''}`);
    };

    const load = async () => {
      const my = ++seq;
      const res = await ctx.api('GET', `/api/streams?search=${enc(search)}&page=${page}&page_size=25`);
      if (my !== seq) return;
      clearError('action');
      const entries = Array.isArray(res.entries) ? res.entries : [];
      totalPages = Math.max(1, res.total_pages || 1);
      subtitle.textContent = `${num(res.total_entries)} stream${res.total_entries === 1 ? '' : 's'}${search ? ` matching “${search}”` : ''}`;
      pageInfo.textContent = `Page ${res.page_number || page} of ${totalPages}`;
      prevBtn.disabled = page <= 1;
      nextBtn.disabled = page >= totalPages;
      replace(t.tbody, ...(entries.length === 0
        ? [emptyRow(5, search ? `No streams match “${search}”` : 'No streams yet')]
        : entries.map((st) => {
          const md = metadataSummary(st.metadata);
          return h('tr', { class: 'stream-row' },
            h('td', { class: 'stream-cell' }, h('a', { class: 'stream-link mono', href: streamHref(st.stream), text: st.stream })),
            h('td', null, statusBadge(st.status)),
            h('td', { class: 'num', text: num(st.version) }),
            h('td', null, timeEl(st.created_at)),
            h('td', { class: md ? 'md-summary' : 'muted', text: md || DASH }));
        })));
    };

    let debounce = null;
    const trigger = (now) => {
      if (debounce !== null) { ctx.cancel(debounce); debounce = null; }
      const go = () => {
        search = input.value.trim();
        page = 1;
        updateHash();
        ctx.run(load);
      };
      if (now) go(); else debounce = ctx.timeout(() => { debounce = null; go(); }, 250);
    };
    input.addEventListener('input', () => trigger(false));
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); trigger(true); } });
    prevBtn.addEventListener('click', () => { if (page > 1) { page -= 1; updateHash(); ctx.run(load); } });
    nextBtn.addEventListener('click', () => { if (page < totalPages) { page += 1; updateHash(); ctx.run(load); } });

    ctx.run(load);
    input.focus();
  }

  // ---------------------------------------------------------------- stream

  function pageStream(ctx, app, stream) {
    const isAll = stream === ALL;
    let direction = 'backward';
    let next = null;
    let seq = 0;
    let loaded = 0;

    const sub = h('div', { class: 'stream-meta', id: 'stream-info' },
      isAll ? h('span', { text: 'All events of the store in global order' }) : h('span', { class: 'muted', text: 'Loading…' }));
    append(app, pageHeader(stream, {
      mono: true,
      titleId: 'stream-name',
      crumbs: [{ text: 'Streams', href: '#/streams' }, { text: stream }],
      sub,
      actions: [h('a', { class: 'btn btn-primary', id: 'follow-live', href: liveHref(stream) },
        h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'Follow live')],
    }));

    const backBtn = h('button', { type: 'button', class: 'seg-btn active', id: 'direction-backward', text: 'Newest first' });
    const fwdBtn = h('button', { type: 'button', class: 'seg-btn', id: 'direction-forward', text: 'Oldest first' });
    const refreshBtn = h('button', { type: 'button', class: 'btn btn-sm', id: 'refresh-events', text: 'Refresh' });
    const moreBtn = h('button', { type: 'button', class: 'btn', id: 'load-more', text: 'Load more' });
    const countText = h('span', { class: 'muted', id: 'events-count' });
    const cols = [{ text: '#', cls: 'num', width: isAll ? '96px' : '72px' }, { text: 'Type', width: isAll ? '210px' : '240px' }];
    if (isAll) cols.push({ text: 'Stream', width: '200px' });
    cols.push({ text: 'Created', width: '172px' }, { text: 'Data' });
    const t = table('events', cols, { cls: 'fixed' });
    const ncols = cols.length;
    t.tbody.appendChild(emptyRow(ncols, 'Loading…'));

    const eventsCard = h('section', { class: 'card' },
      h('div', { class: 'toolbar' },
        h('div', { class: 'segmented', role: 'group', 'aria-label': 'Direction' }, backBtn, fwdBtn),
        refreshBtn,
        h('div', { class: 'toolbar-spacer' }),
        countText),
      h('div', { class: 'table-scroll' }, t.table),
      h('div', { class: 'card-foot' }, moreBtn));

    if (isAll) {
      append(app, eventsCard);
    } else {
      const mdPanel = h('section', { class: 'card metadata-card', id: 'metadata' });
      append(app, h('div', { class: 'grid-stream' }, eventsCard, mdPanel));
      metadataPanel(ctx, stream, mdPanel);
    }

    const renderInfo = (info) => {
      if (isAll) return;
      if (!info) {
        replace(sub, h('span', { class: 'muted', text: 'Stream not found' }));
        return;
      }
      replace(sub,
        statusBadge(info.status),
        h('span', { class: 'meta-item' }, h('span', { class: 'muted', text: 'version ' }), h('span', { class: 'mono strong', id: 'stream-version', text: num(info.version) })),
        h('span', { class: 'meta-item' }, h('span', { class: 'muted', text: 'id ' }), h('span', { class: 'mono', text: num(info.stream_id) })),
        h('span', { class: 'meta-item' }, h('span', { class: 'muted', text: 'created ' }), timeEl(info.created_at)),
        info.deleted_at ? h('span', { class: 'meta-item' }, h('span', { class: 'muted', text: 'deleted ' }), timeEl(info.deleted_at)) : null);
    };

    const eventRow = (ev) => {
      const link = isLink(ev, stream);
      const typeCell = h('td', { class: 'type-cell' },
        h('span', { class: 'event-type', title: ev.event_type, text: ev.event_type }),
        link ? badge('link', 'violet', { title: `link to ${ev.stream_uuid}@${ev.stream_version}` }) : null);
      if (link) {
        typeCell.appendChild(h('a', {
          class: 'link-target mono', href: eventHref(ev.stream_uuid, ev.stream_version),
          title: `link to ${ev.stream_uuid}@${ev.stream_version}`, text: `→ ${ev.stream_uuid}@${ev.stream_version}`,
        }));
      }
      return h('tr', { class: `event-row${link ? ' is-link' : ''}` },
        h('td', { class: 'num' }, h('a', { class: 'event-link', href: eventHref(stream, ev.event_number), text: String(ev.event_number) })),
        typeCell,
        isAll ? h('td', { class: 'ellipsis' }, h('a', {
          class: 'mono subtle-link', href: eventHref(ev.stream_uuid, ev.stream_version),
          title: `${ev.stream_uuid}@${ev.stream_version}`, text: `${ev.stream_uuid}@${ev.stream_version}`,
        })) : null,
        h('td', null, timeEl(ev.created_at)),
        h('td', { class: 'preview mono', title: preview(ev, 2000), text: preview(ev) }));
    };

    const load = async (reset) => {
      const my = ++seq;
      if (reset) { next = null; loaded = 0; }
      moreBtn.disabled = true;
      moreBtn.textContent = 'Loading…';
      let url = `/api/stream?stream=${enc(stream)}&count=20&direction=${direction}`;
      if (!reset && next !== null) url += `&from=${next}`;
      try {
        const res = await ctx.api('GET', url);
        if (my !== seq) return;
        renderInfo(res.info);
        const events = Array.isArray(res.events) ? res.events : [];
        if (reset) t.tbody.replaceChildren();
        for (const ev of events) t.tbody.appendChild(eventRow(ev));
        loaded += events.length;
        if (loaded === 0) replace(t.tbody, emptyRow(ncols, 'No events in this stream'));
        next = res.next === undefined ? null : res.next;
        countText.textContent = `${loaded} event${loaded === 1 ? '' : 's'} shown`;
      } finally {
        if (my === seq) {
          moreBtn.disabled = next === null;
          moreBtn.textContent = next === null ? (loaded ? 'No more events' : 'Load more') : 'Load more';
        }
      }
    };

    const setDirection = (d) => {
      direction = d;
      backBtn.classList.toggle('active', d === 'backward');
      fwdBtn.classList.toggle('active', d === 'forward');
      backBtn.setAttribute('aria-pressed', String(d === 'backward'));
      fwdBtn.setAttribute('aria-pressed', String(d === 'forward'));
      ctx.run(() => load(true));
    };
    backBtn.addEventListener('click', () => setDirection('backward'));
    fwdBtn.addEventListener('click', () => setDirection('forward'));
    refreshBtn.addEventListener('click', () => ctx.run(() => load(true)));
    moreBtn.addEventListener('click', () => { if (next !== null) ctx.run(() => load(false)); });
    backBtn.setAttribute('aria-pressed', 'true');
    fwdBtn.setAttribute('aria-pressed', 'false');
    ctx.run(() => load(true));
  }

  function metadataPanel(ctx, stream, panel) {
    let loadedVersion = null;
    const versionEl = h('span', { class: 'card-hint', id: 'metadata-version', text: 'loading…' });
    const maxCount = h('input', { type: 'number', min: '0', step: '1', id: 'metadata-max-count', class: 'input', placeholder: 'not set' });
    const maxAge = h('input', { type: 'text', id: 'metadata-max-age', class: 'input', placeholder: 'not set, e.g. 7d or 1h 30m', autocomplete: 'off', spellcheck: 'false' });
    const truncBefore = h('input', { type: 'number', min: '0', step: '1', id: 'metadata-truncate-before', class: 'input', placeholder: 'not set' });
    const custom = h('textarea', { id: 'metadata-custom', class: 'input textarea mono', rows: '5', placeholder: 'not set, e.g. {"owner": "billing"}', spellcheck: 'false' });
    const saveBtn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'metadata-save', text: 'Save metadata' });
    const msg = h('div', { class: 'form-message', id: 'metadata-message', role: 'status' });

    const field = (label, input, hint) => h('label', { class: 'field' },
      h('span', { class: 'field-label', text: label }), input, hint ? h('span', { class: 'field-hint', text: hint }) : null);

    const form = h('form', { class: 'md-form', novalidate: true },
      h('div', { class: 'field-row' },
        field('Max count', maxCount),
        field('Truncate before', truncBefore)),
      field('Max age', maxAge, 'humantime: 30s, 15m, 1h 30m, 7d'),
      field('Custom (JSON)', custom),
      h('div', { class: 'form-actions' }, saveBtn, msg));

    replace(panel,
      h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Stream metadata' }), versionEl),
      h('div', { class: 'card-body' }, form));

    const setMessage = (text, kind) => {
      msg.textContent = text;
      msg.className = `form-message${kind ? ' msg-' + kind : ''}`;
    };

    const fill = (res) => {
      loadedVersion = res && res.version !== undefined ? res.version : null;
      const md = (res && res.metadata) || {};
      versionEl.textContent = loadedVersion === null ? 'not set' : `version ${loadedVersion}`;
      maxCount.value = md.max_count === null || md.max_count === undefined ? '' : String(md.max_count);
      maxAge.value = md.max_age ? String(md.max_age) : '';
      truncBefore.value = md.truncate_before === null || md.truncate_before === undefined ? '' : String(md.truncate_before);
      custom.value = md.custom === null || md.custom === undefined ? '' : JSON.stringify(md.custom, null, 2);
    };

    const load = async () => {
      const res = await ctx.api('GET', `/api/metadata?stream=${enc(stream)}`);
      fill(res);
    };

    const parseCount = (input, label) => {
      const v = input.value.trim();
      if (input.validity && input.validity.badInput) throw new Error(`${label} must be a non-negative integer`);
      if (v === '') return null;
      if (!/^\d+$/.test(v)) throw new Error(`${label} must be a non-negative integer`);
      return Number(v);
    };

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      let body;
      try {
        let customValue = null;
        if (custom.value.trim() !== '') {
          try { customValue = JSON.parse(custom.value); } catch (err) { throw new Error(`Custom metadata is not valid JSON: ${err.message}`); }
        }
        body = {
          expected_version: loadedVersion,
          metadata: {
            max_count: parseCount(maxCount, 'Max count'),
            max_age: maxAge.value.trim() === '' ? null : maxAge.value.trim(),
            truncate_before: parseCount(truncBefore, 'Truncate before'),
            custom: customValue,
          },
        };
      } catch (err) {
        setMessage(err.message, 'error');
        return;
      }
      saveBtn.disabled = true;
      setMessage('saving…', null);
      try {
        const res = await ctx.api('PUT', `/api/metadata?stream=${enc(stream)}`, body);
        setMessage(`saved: version ${res.version}`, 'ok');
        await ctx.run(load);
      } catch (err) {
        if (err instanceof Cancelled) return;
        setMessage(err.message, 'error');
        showApiError(err, 'action');
        if (err.status === 409 || err.kind === 'wrong_expected_version') await ctx.run(load);
      } finally {
        saveBtn.disabled = false;
      }
    });

    ctx.run(load);
  }

  // ----------------------------------------------------------------- event

  function pageEvent(ctx, app, stream, numberText) {
    if (!/^\d+$/.test(numberText)) {
      showError(`Invalid event number: ${numberText}`);
      return;
    }
    const n = Number(numberText);
    const prevBtn = h('button', { type: 'button', class: 'btn', id: 'prev-event', text: '← Previous', disabled: n === 0 });
    const nextBtn = h('button', { type: 'button', class: 'btn', id: 'next-event', text: 'Next →' });
    let prevTarget = n > 0 ? n - 1 : null;
    let nextTarget = n + 1;
    const goPrev = () => { if (prevTarget !== null) location.hash = eventHref(stream, prevTarget); };
    const goNext = () => { if (nextTarget !== null) location.hash = eventHref(stream, nextTarget); };
    prevBtn.addEventListener('click', goPrev);
    nextBtn.addEventListener('click', goNext);
    ctx.on(document, 'keydown', (e) => {
      const tag = (e.target && e.target.tagName) || '';
      if (tag === 'INPUT' || tag === 'TEXTAREA' || e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key === 'ArrowLeft' && !prevBtn.disabled) goPrev();
      if (e.key === 'ArrowRight' && !nextBtn.disabled) goNext();
    });

    const sub = h('div', { class: 'stream-meta' },
      h('a', { class: 'mono', href: streamHref(stream), text: stream }),
      h('span', { class: 'mono strong', text: `#${n}` }));
    append(app, pageHeader('…', {
      mono: true,
      titleId: 'event-type',
      crumbs: [{ text: 'Streams', href: '#/streams' }, { text: stream, href: streamHref(stream) }, { text: `#${n}` }],
      sub,
      actions: [prevBtn, nextBtn],
    }));

    const details = h('dl', { class: 'kv', id: 'event-details' });
    const dataPre = h('pre', { class: 'code', id: 'event-data' });
    const mdPre = h('pre', { class: 'code', id: 'event-metadata' });
    const dataHint = h('span', { class: 'card-hint', id: 'event-data-encoding' });
    const mdHint = h('span', { class: 'card-hint' });
    const dataExtra = h('div', { class: 'code-extra' });
    append(app,
      h('section', { class: 'card' }, h('div', { class: 'card-body' }, details)),
      h('div', { class: 'grid-event' },
        h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Data' }), dataHint), dataPre, dataExtra),
        h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Metadata' }), mdHint), mdPre)));
    dataPre.textContent = 'Loading…';
    mdPre.textContent = '';
    const detailCards = [details.closest('.card'), dataPre.closest('.grid-event')];

    ctx.run(async () => {
      let ev;
      try {
        ev = await ctx.api('GET', `/api/event?stream=${enc(stream)}&number=${n}`);
      } catch (err) {
        if (!(err instanceof Cancelled)) {
          setText('event-type', err.status === 404 ? 'Event not found' : 'Event unavailable');
          detailCards.forEach((c) => { if (c) c.hidden = true; });
          app.appendChild(h('section', { class: 'card' }, h('div', { class: 'card-body empty-state' },
            h('p', { text: err.message }),
            h('a', { href: streamHref(stream), text: `← Back to ${stream}` }))));
        }
        throw err;
      }
      setText('event-type', ev.event_type);
      document.title = `${ev.event_type} · ${stream}#${n} · chronik`;
      const link = isLink(ev, stream);
      const idOrNull = (v) => (v === null || v === undefined ? h('span', { class: 'muted', text: 'none' }) : h('span', { class: 'mono', text: v }));
      const origin = link
        ? h('a', { id: 'event-link-target', class: 'mono', href: eventHref(ev.stream_uuid, ev.stream_version), text: `link to ${ev.stream_uuid}@${ev.stream_version}` })
        : stream === ALL
          ? h('a', { id: 'event-origin', class: 'mono', href: eventHref(ev.stream_uuid, ev.stream_version), text: `${ev.stream_uuid}@${ev.stream_version}` })
          : h('span', { class: 'mono', text: `${ev.stream_uuid}@${ev.stream_version}` });
      if (link) sub.appendChild(badge('link', 'violet'));
      append(details,
        kv('Stream', h('a', { class: 'mono', href: streamHref(stream), text: stream })),
        kv('Event number', h('span', { class: 'mono', id: 'event-number', text: String(ev.event_number) })),
        kv(link ? 'Link target' : 'Original stream', origin),
        kv('Global position', h('span', { class: 'mono', text: num(ev.global_position) })),
        kv('Event ID', h('span', { class: 'mono', id: 'event-id', text: ev.event_id })),
        kv('Created at', h('span', null, h('span', { class: 'mono', title: ev.created_at, text: ev.created_at }), h('span', { class: 'muted', text: `  (${fmtAgo(ev.created_at)})` }))),
        kv('Correlation ID', idOrNull(ev.correlation_id), { id: 'event-correlation-id' }),
        kv('Causation ID', idOrNull(ev.causation_id), { id: 'event-causation-id' }),
        kv('Content type', h('span', { class: 'mono', text: ev.content_type || DASH })),
        kv('Encoding', h('span', { class: 'mono', text: `data: ${ev.data_encoding || '?'} · metadata: ${ev.metadata === null || ev.metadata === undefined ? 'none' : ev.metadata_encoding || '?'}` })));

      if (ev.data_encoding === 'json') {
        fillJson(dataPre, ev.data);
        dataHint.textContent = 'json';
      } else {
        dataPre.textContent = typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data);
        dataPre.classList.add('wrap');
        const bytes = typeof ev.data === 'string' ? Math.floor(ev.data.length / 2) : 0;
        dataHint.textContent = `hex · ${bytes} bytes`;
        const text = hexToUtf8(ev.data);
        if (text !== null) {
          replace(dataExtra, h('div', { class: 'field-label', text: 'Decoded as UTF-8' }), h('pre', { class: 'code code-sub wrap', text: text }));
        }
      }
      if (ev.metadata === null || ev.metadata === undefined) {
        mdPre.textContent = 'no metadata';
        mdPre.classList.add('muted');
      } else if (ev.metadata_encoding === 'json') {
        fillJson(mdPre, ev.metadata);
        mdHint.textContent = 'json';
      } else {
        mdPre.textContent = typeof ev.metadata === 'string' ? ev.metadata : JSON.stringify(ev.metadata);
        mdPre.classList.add('wrap');
        mdHint.textContent = 'hex';
      }
    });

    // Find the real neighbours (numbers may have gaps, e.g. after truncation).
    const neighbour = async (dir) => {
      const res = await api('GET', `/api/stream?stream=${enc(stream)}&from=${n}&count=2&direction=${dir}`);
      const evs = (res && Array.isArray(res.events)) ? res.events : [];
      const found = evs.find((e) => (dir === 'forward' ? e.event_number > n : e.event_number < n));
      return found ? found.event_number : null;
    };
    // Aims a button at the neighbour found that way, or disables it at the stream's end.
    const aim = (dir, btn, end, set) => neighbour(dir).then((v) => {
      if (!ctx.alive) return;
      set(v);
      btn.disabled = v === null;
      btn.title = v === null ? `This is the ${end} event` : `Event ${v}`;
    }, () => { /* keep the naive target */ });
    aim('forward', nextBtn, 'last', (v) => { nextTarget = v; });
    if (n > 0) aim('backward', prevBtn, 'first', (v) => { prevTarget = v; });
  }

  // ------------------------------------------------------------------ live

  const MAX_LIVE = 200;

  function pageLive(ctx, app, stream) {
    const input = h('input', { type: 'text', id: 'live-stream', class: 'input mono', value: stream, placeholder: '$all', spellcheck: 'false', autocomplete: 'off', 'aria-label': 'Stream to follow' });
    const followBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'live-follow', text: 'Follow' });
    const status = h('span', { id: 'live-status', class: 'status-pill status-connecting', text: 'connecting…' });
    const pauseBtn = h('button', { type: 'button', class: 'btn', id: 'live-pause', text: 'Pause' });
    const clearBtn = h('button', { type: 'button', class: 'btn', id: 'live-clear', text: 'Clear' });
    const counter = h('span', { class: 'muted', id: 'live-count', text: '0 events received' });
    const lagged = h('div', { class: 'notice notice-amber', id: 'live-lagged', hidden: true });
    const list = h('ul', { class: 'live-list', id: 'live-events' });
    const empty = h('div', { class: 'live-empty', id: 'live-empty' },
      h('div', { class: 'live-empty-title', text: 'Waiting for new events…' }),
      h('div', { class: 'muted', text: `Events appended to ${stream} appear here as soon as they are committed.` }));

    append(app, pageHeader('Live', {
      sub: h('span', null, 'Following ', h('a', { class: 'mono', href: streamHref(stream), text: stream }), ' · newest first, last 200 kept'),
      actions: [status],
    }));
    append(app, h('section', { class: 'card' },
      h('div', { class: 'toolbar' },
        h('form', { class: 'inline-form', onsubmit: (e) => { e.preventDefault(); follow(); } },
          h('label', { class: 'inline-label', for: 'live-stream', text: 'Stream' }), input, followBtn),
        h('div', { class: 'toolbar-spacer' }),
        counter, pauseBtn, clearBtn),
      lagged,
      empty,
      list));

    function follow() {
      const target = input.value.trim() || ALL;
      const hash = liveHref(target);
      if (location.hash === hash) route(); else location.hash = hash;
    }
    followBtn.addEventListener('click', (e) => { e.preventDefault(); follow(); });

    let received = 0;
    let paused = false;
    let buffered = [];
    let es = null;

    const setStatus = (text, kind) => {
      status.textContent = text;
      status.className = `status-pill status-${kind}`;
    };

    const item = (ev) => {
      const ref = `${ev.stream_uuid}@${ev.stream_version}`;
      return h('li', { class: 'live-event fresh' },
        h('time', { class: 'live-time mono', datetime: ev.created_at, title: ev.created_at, text: fmtClock(ev.created_at, true) }),
        h('a', { class: 'live-ref mono', href: eventHref(ev.stream_uuid, ev.stream_version), title: `open event ${ref}`, text: ref }),
        h('span', { class: 'live-type', title: ev.event_type, text: ev.event_type }),
        h('span', { class: 'live-preview mono', title: preview(ev, 2000), text: preview(ev, 200) }));
    };

    const show = (events) => {
      const frag = document.createDocumentFragment();
      for (let i = events.length - 1; i >= 0; i--) frag.appendChild(item(events[i]));
      list.insertBefore(frag, list.firstChild);
      while (list.children.length > MAX_LIVE) list.removeChild(list.lastChild);
      empty.hidden = list.children.length > 0;
    };

    const updateCounter = () => {
      counter.textContent = `${received} event${received === 1 ? '' : 's'} received${paused && buffered.length ? ` · ${buffered.length} waiting` : ''}`;
    };

    const connect = () => {
      if (!ctx.alive) return;
      setStatus('connecting…', 'connecting');
      es = ctx.eventSource(`/api/live?stream=${enc(stream)}`);
      es.addEventListener('open', () => { setStatus('connected', 'connected'); clearError('live'); });
      es.addEventListener('events', (m) => {
        let events;
        try { events = JSON.parse(m.data); } catch (_) { return; }
        if (!Array.isArray(events)) events = [events];
        received += events.length;
        if (paused) {
          buffered.push(...events);
          if (buffered.length > MAX_LIVE) buffered = buffered.slice(-MAX_LIVE);
        } else {
          show(events);
        }
        updateCounter();
      });
      es.addEventListener('lagged', (m) => {
        let missed = null;
        try { missed = JSON.parse(m.data).missed; } catch (_) { /* ignore */ }
        lagged.hidden = false;
        lagged.textContent = `${missed === null || missed === undefined ? 'Some' : missed} event${missed === 1 ? ' was' : 's were'} skipped because this view fell behind the live feed (${fmtClock(new Date())}). Open the stream page to see every event.`;
      });
      es.addEventListener('error', () => {
        if (!ctx.alive) return;
        setStatus('reconnecting…', 'reconnecting');
        if (es.readyState === EventSource.CLOSED) {
          // The browser gave up (e.g. an HTTP error): retry by hand.
          ctx.closeSource(es);
          showError(`Live connection to ${stream} failed; retrying…`, 'live');
          ctx.timeout(connect, 3000);
        }
      });
    };

    pauseBtn.addEventListener('click', () => {
      paused = !paused;
      pauseBtn.textContent = paused ? 'Resume' : 'Pause';
      pauseBtn.classList.toggle('btn-active', paused);
      if (!paused && buffered.length) { show(buffered); buffered = []; }
      updateCounter();
    });
    clearBtn.addEventListener('click', () => {
      list.replaceChildren();
      buffered = [];
      received = 0;
      lagged.hidden = true;
      empty.hidden = false;
      updateCounter();
    });

    connect();
  }

  // --------------------------------------------------------- subscriptions

  function pageSubscriptions(ctx, app) {
    const subtitle = h('span', { id: 'subscriptions-total', text: 'Loading…' });
    append(app, pageHeader('Subscriptions', { sub: subtitle }));
    const t = table('subscriptions', [
      'Name', 'Stream', { text: 'Checkpoint', cls: 'num' }, { text: 'Head', cls: 'num' }, { text: 'Lag', cls: 'num' },
      { text: 'Parked', cls: 'num' }, 'Owner', 'Updated']);
    t.tbody.appendChild(emptyRow(8, 'Loading…'));
    append(app, h('section', { class: 'card' }, h('div', { class: 'table-scroll' }, t.table)));

    ctx.poll(async () => {
      const subs = await ctx.api('GET', '/api/subscriptions');
      const list = Array.isArray(subs) ? subs : [];
      const parked = list.reduce((a, x) => a + (x.parked || 0), 0);
      subtitle.textContent = `${list.length} subscription${list.length === 1 ? '' : 's'}${parked ? ` · ${parked} parked event${parked === 1 ? '' : 's'}` : ''}`;
      replace(t.tbody, ...(list.length === 0 ? [emptyRow(8, 'No subscriptions')] : list.map((sub) => h('tr', { class: 'subscription-row' },
        h('td', null, h('a', { class: 'subscription-link strong', href: subHref(sub.stream, sub.name), text: sub.name })),
        h('td', null, h('a', { class: 'mono subtle-link', href: streamHref(sub.stream), text: sub.stream })),
        h('td', { class: 'num', text: num(sub.checkpoint) }),
        h('td', { class: 'num', text: num(sub.head) }),
        h('td', { class: 'num' }, lagBadge(sub.lag)),
        h('td', { class: 'num' }, sub.parked > 0 ? badge(num(sub.parked), 'red') : h('span', { class: 'muted', text: '0' })),
        h('td', { class: 'owner-cell', text: ownerText(sub) }),
        h('td', null, h('span', { class: 'muted', title: sub.updated_at, text: fmtAgo(sub.updated_at) }))))));
    }, 2000, 'poll:subscriptions');
  }

  function pageSubscription(ctx, app, stream, name) {
    const phase = h('span', { id: 'sub-phase', class: 'badge badge-neutral', text: '…' });
    const owner = h('span', { id: 'sub-owner', class: 'muted' });
    const replayBtn = h('button', { type: 'button', class: 'btn', id: 'replay-parked', text: 'Replay parked events' });
    const deleteBtn = h('button', { type: 'button', class: 'btn btn-danger', id: 'delete-subscription', text: 'Delete subscription' });
    const replayMsg = h('span', { class: 'form-message msg-ok', id: 'replay-message' });

    append(app, pageHeader(name, {
      titleId: 'sub-name',
      crumbs: [{ text: 'Subscriptions', href: '#/subscriptions' }, { text: stream, href: streamHref(stream) }, { text: name }],
      sub: h('span', { class: 'stream-meta' },
        phase,
        h('span', null, h('span', { class: 'muted', text: 'on ' }), h('a', { class: 'mono', href: streamHref(stream), text: stream })),
        owner),
      actions: [replayMsg, replayBtn, deleteBtn],
    }));

    append(app, h('div', { class: 'stat-grid' },
      statCard('Checkpoint', 'sub-checkpoint', { subId: 'sub-checkpoint-sub' }),
      statCard('Head', 'sub-head', { subId: 'sub-head-sub' }),
      statCard('Lag', 'sub-lag', { unit: 'events', subId: 'sub-lag-sub' }),
      statCard('Parked', 'sub-parked', { subId: 'sub-parked-sub' }),
      statCard('Delivered', 'sub-delivered-rate', { unit: 'events/s', subId: 'sub-delivered-sub' }),
      statCard('Acked', 'sub-acked-rate', { unit: 'events/s', subId: 'sub-acked-sub' })));

    const settingsT = table('sub-settings', ['Setting', 'Value'], { cls: 'kv-table' });
    const consumersT = table('consumers', [{ text: 'Consumer', cls: 'num' }, { text: 'In flight', cls: 'num' }, { text: 'Buffer', cls: 'num' }, 'State']);
    const retrying = h('ul', { class: 'retry-list', id: 'retrying' });
    const liveKv = h('dl', { class: 'kv kv-compact', id: 'sub-live' });

    append(app, h('div', { class: 'grid-main-side' },
      chartCard('Lag', 'events behind head · since this page opened', 'lag-chart', h('span', { class: 'card-aside', id: 'lag-now' })),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Runtime' }), h('span', { class: 'card-hint', id: 'sub-live-hint' })),
        h('div', { class: 'card-body' }, liveKv))));

    append(app, h('div', { class: 'grid-3' },
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Consumers' })),
        h('div', { class: 'table-scroll' }, consumersT.table)),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Retrying' })),
        h('div', { class: 'card-body' }, retrying)),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Settings' })),
        h('div', { class: 'table-scroll' }, settingsT.table))));

    const parkedT = table('parked', [
      { text: 'Event', cls: 'num', width: '100px' }, { text: 'Type', width: '220px' }, { text: 'Reason' },
      { text: 'Retries', cls: 'num', width: '80px' }, { text: 'Parked at', width: '170px' }, { text: '', width: '150px' }], { cls: 'fixed' });
    parkedT.tbody.appendChild(emptyRow(6, 'Loading…'));
    append(app, h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { class: 'card-title', text: 'Parked events' }), h('span', { class: 'card-hint', id: 'parked-count' })),
      h('div', { class: 'table-scroll' }, parkedT.table)));

    const qs = `stream=${enc(stream)}&name=${enc(name)}`;
    const lagSeries = [];
    let lastSettings = null;
    let lastConsumers = null;
    let lastRetrying = null;
    let lastParked = null;

    const drawLag = () => {
      const el = byId('lag-chart');
      if (!el) return;
      const now = Date.now();
      const t0 = lagSeries.length ? Math.min(lagSeries[0].t, now - 60000) : now - 60000;
      const mid = t0 + (now - t0) / 2;
      drawChart(el, lagSeries, {
        tMin: t0, tMax: now, integer: true, minTop: 4, color: '#d97706', height: 190,
        xTicks: [{ t: t0, label: fmtClock(new Date(t0)) }, { t: mid, label: fmtClock(new Date(mid)) }, { t: now, label: 'now' }],
      });
    };

    const renderSettings = (settings) => {
      const key = JSON.stringify(settings === undefined ? null : settings);
      if (key === lastSettings) return;
      lastSettings = key;
      const entries = settings && typeof settings === 'object' ? Object.entries(settings) : [];
      replace(settingsT.tbody, ...(entries.length === 0
        ? [emptyRow(2, settings === null || settings === undefined ? 'Default settings' : 'No settings')]
        : entries.sort((a, b) => a[0].localeCompare(b[0])).map(([k, v]) => h('tr', { class: 'setting-row' },
          h('td', { class: 'mono setting-key', text: k }),
          h('td', { class: 'mono', text: typeof v === 'string' ? v : JSON.stringify(v) })))));
    };

    const renderLive = (live) => {
      const liveHint = byId('sub-live-hint');
      if (!live) {
        phase.className = 'badge badge-neutral';
        phase.textContent = 'not running here';
        phase.title = 'The subscription is not running in this server process';
        if (liveHint) liveHint.textContent = 'not running in this process';
        replace(liveKv, h('div', { class: 'muted kv-span', text: 'This subscription is not served by this server process, so live figures (consumers, in-flight events, rates) are not available here.' }));
        setText('sub-delivered-rate', DASH);
        setText('sub-acked-rate', DASH);
        const cKey = 'none';
        if (lastConsumers !== cKey) { lastConsumers = cKey; replace(consumersT.tbody, emptyRow(4, 'Not running in this process')); }
        if (lastRetrying !== cKey) { lastRetrying = cKey; replace(retrying, h('li', { class: 'muted', text: 'Not running in this process' })); }
        return;
      }
      phase.className = `badge badge-${PHASE_KIND[live.phase] || 'neutral'}`;
      phase.textContent = PHASE_TEXT[live.phase] || live.phase || 'unknown';
      phase.title = 'phase';
      if (liveHint) liveHint.textContent = `${num(live.subscribers)} subscriber${live.subscribers === 1 ? '' : 's'}`;
      replace(liveKv,
        kv('Phase', h('span', { text: PHASE_TEXT[live.phase] || live.phase })),
        kv('Subscribers', num(live.subscribers), { mono: true }),
        kv('Queued', num(live.queued), { mono: true }),
        kv('In flight', num(live.in_flight), { mono: true }),
        kv('Last received', num(live.last_received), { mono: true }),
        kv('Acked', num(live.acked), { mono: true }),
        kv('Persisted', num(live.persisted), { mono: true }),
        kv('Replaying', num(live.replaying), { mono: true }),
        kv('Paused', num(live.paused), { mono: true }));
      setText('sub-delivered-rate', rateText(live.delivered_per_second));
      setText('sub-acked-rate', rateText(live.acked_per_second));
      setText('sub-delivered-sub', `last received ${num(live.last_received)}`);
      setText('sub-acked-sub', `persisted ${num(live.persisted)}`);

      const consumers = Array.isArray(live.consumers) ? live.consumers : [];
      const cKey = JSON.stringify(consumers);
      if (cKey !== lastConsumers) {
        lastConsumers = cKey;
        replace(consumersT.tbody, ...(consumers.length === 0 ? [emptyRow(4, 'No consumers connected')] : consumers.map((c) => h('tr', { class: 'consumer-row' },
          h('td', { class: 'num', text: num(c.id) }),
          h('td', { class: 'num', text: num(c.in_flight) }),
          h('td', { class: 'num', text: num(c.buffer_size) }),
          h('td', null, c.paused ? badge('paused', 'amber') : badge('active', 'green'))))));
      }
      const retry = Array.isArray(live.retrying) ? live.retrying : [];
      const rKey = JSON.stringify(retry);
      if (rKey !== lastRetrying) {
        lastRetrying = rKey;
        replace(retrying, ...(retry.length === 0 ? [h('li', { class: 'muted', text: 'No events being retried' })] : retry.map((r) => h('li', { class: 'retry-item' },
          h('a', { class: 'mono', href: eventHref(stream, r.event_number), text: `#${r.event_number}` }),
          h('span', { class: 'muted', text: `retry ${r.retry_count}` })))));
      }
    };

    const renderParked = (parked) => {
      const list = Array.isArray(parked) ? parked : [];
      const key = JSON.stringify(list);
      if (key === lastParked) return;
      lastParked = key;
      setText('parked-count', `${list.length} event${list.length === 1 ? '' : 's'}`);
      replace(parkedT.tbody, ...(list.length === 0 ? [emptyRow(6, 'No parked events')] : list.map((p) => {
        const ev = p.event;
        return h('tr', { class: 'parked-row' },
          h('td', { class: 'num' }, h('a', { class: 'parked-event-link', href: eventHref(stream, p.event_number), text: String(p.event_number) })),
          h('td', { class: 'ellipsis' },
            ev ? h('span', { class: 'event-type', title: ev.event_type, text: ev.event_type }) : h('span', { class: 'muted', text: 'event not found' }),
            ev && stream === ALL ? h('div', { class: 'mono small muted clip', text: `${ev.stream_uuid}@${ev.stream_version}` }) : null),
          h('td', { class: 'reason', title: p.reason, text: p.reason }),
          h('td', { class: 'num', text: num(p.retry_count) }),
          h('td', null, timeEl(p.parked_at)),
          h('td', null, p.replay_requested ? badge('replay requested', 'blue') : null));
      })));
    };

    const refresh = ctx.poll(async () => {
      const [sub, parked] = await Promise.all([
        ctx.api('GET', `/api/subscription?${qs}`),
        ctx.api('GET', `/api/parked?${qs}`),
      ]);
      setText('sub-checkpoint', num(sub.checkpoint));
      setText('sub-head', num(sub.head));
      setText('sub-lag', num(sub.lag));
      setText('sub-parked', num(sub.parked));
      setText('sub-checkpoint-sub', `updated ${fmtAgo(sub.updated_at)}`);
      setText('sub-head-sub', stream === ALL ? 'global position' : 'stream version');
      setText('sub-lag-sub', sub.lag === 0 ? 'caught up' : 'events behind head');
      setText('sub-parked-sub', sub.parked > 0 ? 'need attention' : 'none parked');
      const lagEl = byId('sub-lag');
      if (lagEl) lagEl.classList.toggle('text-amber', sub.lag > 0);
      const parkedEl = byId('sub-parked');
      if (parkedEl) parkedEl.classList.toggle('text-red', sub.parked > 0);
      owner.textContent = `owner: ${ownerText(sub)} · created ${fmtTime(sub.created_at)}`;
      renderSettings(sub.settings);
      renderLive(sub.live);
      renderParked(parked);
      lagSeries.push({ t: Date.now(), v: sub.lag });
      if (lagSeries.length > 3600) lagSeries.shift();
      setText('lag-now', `now ${num(sub.lag)}`);
      drawLag();
    }, 1000, 'poll:subscription');

    replayBtn.addEventListener('click', () => ctx.run(async () => {
      replayBtn.disabled = true;
      try {
        const res = await ctx.api('POST', `/api/replay?${qs}`);
        replayMsg.textContent = `${res.replayed} events replayed`;
        lastParked = null;
        refresh();
      } finally {
        replayBtn.disabled = false;
      }
    }));
    deleteBtn.addEventListener('click', () => ctx.run(async () => {
      if (!window.confirm(`Delete subscription "${name}" on stream "${stream}"?\n\nIts checkpoint and parked events are removed.`)) return;
      await ctx.api('DELETE', `/api/subscription?${qs}`);
      location.hash = '#/subscriptions';
    }));
    ctx.on(window, 'resize', drawLag);
  }

  // ---------------------------------------------------------------- router

  function parseHash() {
    let raw = location.hash || '';
    if (raw.startsWith('#')) raw = raw.slice(1);
    if (!raw.startsWith('/')) raw = '/' + raw;
    const qi = raw.indexOf('?');
    const path = qi >= 0 ? raw.slice(0, qi) : raw;
    const query = qi >= 0 ? raw.slice(qi + 1) : '';
    const parts = path.split('/').slice(1).map((p) => {
      try { return decodeURIComponent(p); } catch (_) { return p; }
    });
    while (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
    return { parts, params: new URLSearchParams(query) };
  }

  const NAV_OF = { '': 'dashboard', streams: 'streams', stream: 'streams', event: 'streams', live: 'live', subscriptions: 'subscriptions', subscription: 'subscriptions' };

  let current = null;

  function notFound(app, text) {
    append(app, pageHeader('Not found'), h('section', { class: 'card' }, h('div', { class: 'card-body' },
      h('p', { text }), h('a', { href: '#/', text: '← Back to the dashboard' }))));
  }

  function route() {
    if (current) current.destroy();
    clearError();
    const ctx = new PageCtx();
    current = ctx;
    const app = byId('app');
    app.replaceChildren();
    document.title = 'chronik';
    const { parts, params } = parseHash();
    const [page, a, b] = parts;
    document.querySelectorAll('#nav a').forEach((el) => el.classList.toggle('active', el.dataset.nav === NAV_OF[page]));
    window.scrollTo(0, 0);
    try {
      switch (page) {
        case '':
        case 'dashboard':
          pageDashboard(ctx, app);
          break;
        case 'streams':
          document.title = 'Streams · chronik';
          pageStreams(ctx, app, params);
          break;
        case 'stream':
          if (!a) { notFound(app, 'No stream given.'); break; }
          document.title = `${a} · chronik`;
          pageStream(ctx, app, a);
          break;
        case 'event':
          if (!a || b === undefined) { notFound(app, 'No event given.'); break; }
          document.title = `${a}#${b} · chronik`;
          pageEvent(ctx, app, a, b);
          break;
        case 'live':
          document.title = 'Live · chronik';
          pageLive(ctx, app, a || ALL);
          break;
        case 'subscriptions':
          document.title = 'Subscriptions · chronik';
          pageSubscriptions(ctx, app);
          break;
        case 'subscription':
          if (!a || b === undefined) { notFound(app, 'No subscription given.'); break; }
          document.title = `${b} · chronik`;
          pageSubscription(ctx, app, a, b);
          break;
        default:
          notFound(app, `There is no page at ${location.hash}.`);
      }
    } catch (e) {
      showError(`Could not render the page: ${(e && e.message) || e}`);
    }
  }

  async function loadNavMeta() {
    try {
      const ov = await api('GET', '/api/overview');
      const meta = byId('nav-meta');
      if (!meta || !ov) return;
      replace(meta,
        h('span', { class: 'nav-store', title: 'store', text: ov.store || '' }),
        h('span', { class: 'nav-backend', text: ov.backend || '' }),
        ov.read_only ? h('span', { class: 'nav-ro', text: 'read-only' }) : null,
        h('span', { class: 'nav-version', text: ov.version ? `v${ov.version}` : '' }));
    } catch (_) {
      /* pages report their own errors */
    }
  }

  function start() {
    const close = byId('error-close');
    if (close) close.addEventListener('click', () => clearError());
    window.addEventListener('hashchange', route);
    route();
    loadNavMeta();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
