// app.js: shoal's dashboard, one page over the admin API (docs/dashboard.md). Plain DOM, no
// framework; uPlot draws the time series; the service map is an SVG with a layered layout
// written here. Every text from the API goes in as text nodes, never as HTML.
import uPlot from 'uplot';
import './app.css';

const $ = (sel) => document.querySelector(sel);
const main = () => $('#main');
let session = null; // {id, scope, prefix, name, csrf}
let refreshTimer = null;
let eventSource = null;
let currentRender = null;

// ---- DOM helpers -------------------------------------------------------------------------
function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'text') el.textContent = v;
        else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
        if (kid === null || kid === undefined || kid === false) continue;
        el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
}
const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v);
    }
    for (const kid of kids.flat()) if (kid) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return el;
}
function table(headers, rows, caption) {
    return h('div', { class: 'scroll' }, h('table', {},
        caption ? h('caption', { class: 'muted' }, caption) : null,
        h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', class: x.num ? 'num' : null }, x.label || x)))),
        h('tbody', {}, rows)));
}
const num = (v, digits = 1) => (v === null || v === undefined ? '–' : Number(v).toFixed(digits));
const pct = (v) => (v === null || v === undefined ? '–' : (100 * v).toFixed(2) + ' %');
const ms = (v) => (v === null || v === undefined ? '–' : Number(v).toFixed(1) + ' ms');
function dur(msv) {
    if (msv === null || msv === undefined) return '–';
    const sec = Math.floor(msv / 1000);
    if (sec < 60) return sec + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min';
    return Math.floor(sec / 3600) + ' h ' + Math.floor((sec % 3600) / 60) + ' min';
}
function healthClass(ratio, health) {
    if (health === 'critical') return 'bad';
    if (health === 'warning') return 'warn';
    if (ratio === null || ratio === undefined) return 'idle';
    if (ratio >= 0.05) return 'bad';
    if (ratio >= 0.01) return 'warn';
    return 'ok';
}
const canWrite = () => session && (session.scope === 'write' || session.scope === 'admin') && !session.prefix;

// ---- API -----------------------------------------------------------------------------------
class ApiError extends Error {
    constructor(status, body) {
        super((body && body.error) || 'HTTP ' + status);
        this.status = status;
        this.field = body && body.field;
    }
}
async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers || {});
    const method = opts.method || 'GET';
    if (method !== 'GET' && session) headers['X-Shoal-CSRF'] = session.csrf;
    if (opts.json !== undefined) {
        headers['Content-Type'] = 'application/json';
        opts.body = JSON.stringify(opts.json);
    }
    const res = await fetch(path, { method, headers, body: opts.body, credentials: 'same-origin' });
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = text; }
    if (res.status === 401 && path !== '/ui/session') {
        session = null;
        showLogin('Your session ended; log in again.');
        throw new ApiError(401, body);
    }
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
}
function showError(where, err) {
    where.append(h('p', { class: 'error', role: 'alert' }, String(err.message || err)));
}

// ---- confirmation dialog ---------------------------------------------------------------------
function confirmAction(text) {
    const d = $('#confirm');
    $('#confirm-text').textContent = text;
    return new Promise((resolve) => {
        d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
        d.returnValue = '';
        d.showModal();
        $('#confirm-no').focus();
    });
}

// ---- login -----------------------------------------------------------------------------------
function showLogin(message) {
    stopLive();
    $('#nav').hidden = true;
    $('#who').replaceChildren();
    const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'login-help' });
    const status = h('p', { role: 'status', id: 'login-status' }, message || '');
    const form = h('form', {
        onsubmit: async (e) => {
            e.preventDefault();
            status.textContent = 'Checking…';
            status.className = '';
            const token = input.value.trim();
            try {
                // the token is checked as the API sees it, then traded for a session cookie
                const self = await fetch('/v1/token/self', { headers: { Authorization: 'Bearer ' + token } });
                if (!self.ok) {
                    const b = await self.json().catch(() => ({}));
                    throw new Error(b.error || 'the token was refused (' + self.status + ')');
                }
                const res = await fetch('/ui/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }), credentials: 'same-origin' });
                const b = await res.json();
                if (!res.ok) throw new Error(b.error || 'login failed');
                session = b;
                input.value = '';
                start();
            } catch (err) {
                status.textContent = String(err.message || err);
                status.className = 'error';
            }
        },
    },
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { id: 'login-help', class: 'muted' }, 'The token in DATA_DIR/token, or one made with shoal token create. A read token gives a read-only view.'),
    h('button', { class: 'primary', type: 'submit' }, 'Log in'),
    status);
    main().replaceChildren(h('section', { class: 'login', 'aria-labelledby': 'login-title' }, h('h1', { id: 'login-title' }, 'Log in to shoal'), form));
    input.focus();
}

async function logout() {
    try { await api('/ui/logout', { method: 'POST' }); } catch { /* the session is gone anyway */ }
    session = null;
    location.hash = '#/map';
    showLogin('Logged out.');
}

function start() {
    $('#nav').hidden = false;
    $('#who').replaceChildren(
        h('span', {}, (session.name || session.id) + ' (' + session.scope + (canWrite() ? '' : ', read-only') + ')'),
        h('button', { id: 'logout', onclick: logout }, 'Log out'));
    startLive();
    route();
}

// ---- live updates: the API's SSE stream of service changes re-renders the current view; one
// page-wide timer refreshes figures (metrics have no stream) ------------------------------------
function startLive() {
    stopLive();
    if (window.EventSource) {
        eventSource = new EventSource('/v1/events/services');
        const kick = () => { if (currentRender && currentRender.live) currentRender.refresh(); };
        for (const ev of ['register', 'deregister', 'health']) eventSource.addEventListener(ev, kick);
        eventSource.onerror = () => {}; // the browser reconnects by itself
    }
    refreshTimer = setInterval(() => {
        if (currentRender && currentRender.live && document.visibilityState === 'visible') currentRender.refresh();
    }, 5000);
}
function stopLive() {
    if (eventSource) eventSource.close();
    eventSource = null;
    if (refreshTimer) clearInterval(refreshTimer);
    refreshTimer = null;
}

// ---- router ----------------------------------------------------------------------------------
const routes = [
    [/^#\/map$/, viewMap],
    [/^#\/services$/, viewServices],
    [/^#\/service\/([^/?]+)$/, viewService],
    [/^#\/traces(\?.*)?$/, viewTraces],
    [/^#\/trace\/([0-9a-f]+)$/, viewTrace],
    [/^#\/logs(\?.*)?$/, viewLogs],
    [/^#\/config(\?.*)?$/, viewConfig],
];
function route() {
    if (!session) return;
    const hash = location.hash || '#/map';
    for (const a of document.querySelectorAll('#nav a')) {
        const base = a.getAttribute('href');
        if (hash === base || hash.startsWith(base + '?') || (base === '#/services' && hash.startsWith('#/service/')) || (base === '#/traces' && hash.startsWith('#/trace/')))
            a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
    }
    if (currentRender && currentRender.destroy) currentRender.destroy();
    currentRender = null;
    for (const [re, fn] of routes) {
        const m = hash.match(re);
        if (m) {
            const root = h('div', {});
            main().replaceChildren(root);
            currentRender = fn(root, ...m.slice(1).map((x) => (x ? decodeURIComponent(x) : x))) || null;
            return;
        }
    }
    location.hash = '#/map';
}
function params(q) {
    return new URLSearchParams((q || '').replace(/^\?/, ''));
}

// ---- service map -------------------------------------------------------------------------------
// Layers by longest path from the nodes nobody calls (external, gateway) so calls flow left to
// right; within a layer nodes keep the API's order. Cycles are cut where a node is revisited.
export function layout(nodes, edges) {
    const ids = nodes.map((n) => n.id);
    const out = new Map(ids.map((id) => [id, []]));
    const indeg = new Map(ids.map((id) => [id, 0]));
    for (const e of edges) {
        if (!out.has(e.source) || !out.has(e.target) || e.source === e.target) continue;
        out.get(e.source).push(e.target);
        indeg.set(e.target, indeg.get(e.target) + 1);
    }
    const layer = new Map(ids.map((id) => [id, 0]));
    const visit = (id, depth, seen) => {
        if (seen.has(id)) return;
        if (depth > layer.get(id)) layer.set(id, depth);
        seen.add(id);
        for (const t of out.get(id)) visit(t, depth + 1, seen);
        seen.delete(id);
    };
    for (const id of ids) if (indeg.get(id) === 0) visit(id, 0, new Set());
    const cols = [];
    for (const id of ids) (cols[layer.get(id)] ||= []).push(id);
    const pos = new Map();
    cols.forEach((col, x) => col.forEach((id, y) => pos.set(id, { x, y, n: col.length })));
    return { pos, ncols: cols.length, nrows: Math.max(1, ...cols.map((c) => (c ? c.length : 0))) };
}

function viewMap(root) {
    root.append(h('h1', {}, 'Service map'), h('p', { class: 'muted' }, 'Calls over the last minute: requests/s, error ratio and p99 on each edge. Select a service to open it.'));
    const box = h('div', {});
    root.append(box);
    const refresh = async () => {
        let topo, inst;
        try {
            [topo, inst] = await Promise.all([api('/v1/topology'), api('/v1/instances').catch(() => [])]);
        } catch (err) {
            box.replaceChildren();
            showError(box, err);
            return;
        }
        const health = {};
        for (const i of inst || []) {
            const hs = i.health === 'critical' ? 'critical' : i.health === 'warning' ? 'warning' : 'passing';
            if (health[i.service] !== 'critical') health[i.service] = hs === 'passing' ? health[i.service] || 'passing' : hs;
        }
        const nodes = topo.nodes || [];
        const edges = topo.edges || [];
        const { pos, ncols, nrows } = layout(nodes, edges);
        const W = 280, H = 100, NW = 130, NH = 40;
        const width = Math.max(1, ncols) * W + 40, height = nrows * H + 40;
        const at = (id) => {
            const p = pos.get(id);
            const off = ((nrows - p.n) * H) / 2;
            return { x: 20 + p.x * W + (W - NW) / 2, y: 20 + off + p.y * H + (H - NH) / 2 };
        };
        const svg = s('svg', { class: 'map', viewBox: `0 0 ${width} ${height}`, role: 'group', 'aria-label': 'Service map' },
            s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '8', markerHeight: '8', orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#57606a' }))));
        for (const e of edges) {
            if (!pos.has(e.source) || !pos.has(e.target)) continue;
            const a = at(e.source), b = at(e.target);
            const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2;
            const cls = 'edge ' + healthClass(e.error_ratio);
            const mx = (x1 + x2) / 2;
            svg.append(s('path', { class: cls, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' },
                s('title', {}, `${e.source} → ${e.target}`)));
            const ly = (y1 + y2) / 2;
            svg.append(s('text', { class: 'elabel', x: mx, y: ly - 22, 'text-anchor': 'middle' }, `${num(e.rps)} rps`));
            svg.append(s('text', { class: 'elabel', x: mx, y: ly - 8, 'text-anchor': 'middle' }, `${pct(e.error_ratio)} · p99 ${ms(e.p99)}`));
        }
        for (const n of nodes) {
            const p = at(n.id);
            const isService = n.kind === 'service';
            const cls = 'node ' + healthClass(isService ? n.error_ratio : null, health[n.id]) + (isService ? ' link' : '');
            const open = () => { location.hash = '#/service/' + encodeURIComponent(n.id); };
            const g = s('g', isService
                ? { class: cls, tabindex: '0', role: 'link', 'aria-label': `${n.id}: ${num(n.rps)} requests/s, errors ${pct(n.error_ratio)}, p99 ${ms(n.p99)}`, 'data-node': n.id, onclick: open, onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); } } }
                : { class: cls, 'data-node': n.id, role: 'img', 'aria-label': `${n.id} (${n.kind})` },
            s('rect', { x: p.x, y: p.y, width: NW, height: NH, rx: 8 }),
            s('text', { x: p.x + NW / 2, y: p.y + NH / 2 + 5, 'text-anchor': 'middle' }, n.id));
            svg.append(g);
        }
        const rows = edges.map((e) => h('tr', { 'data-edge': `${e.source}->${e.target}` },
            h('td', {}, `${e.source} → ${e.target}`), h('td', { class: 'num' }, num(e.rps)), h('td', { class: 'num' }, pct(e.error_ratio)),
            h('td', { class: 'num' }, ms(e.p50)), h('td', { class: 'num' }, ms(e.p99))));
        box.replaceChildren(svg, h('h2', {}, 'Edges'),
            edges.length ? table(['call', { label: 'rps', num: 1 }, { label: 'errors', num: 1 }, { label: 'p50', num: 1 }, { label: 'p99', num: 1 }], rows) : h('p', { class: 'muted' }, 'No calls yet.'));
    };
    refresh();
    return { live: true, refresh };
}

// ---- services and instances ------------------------------------------------------------------------
function viewServices(root) {
    root.append(h('h1', {}, 'Services and instances'));
    const box = h('div', {});
    root.append(box);
    const refresh = async () => {
        let stack, inst;
        try {
            [stack, inst] = await Promise.all([api('/v1/stack'), api('/v1/instances')]);
        } catch (err) {
            box.replaceChildren();
            showError(box, err);
            return;
        }
        const rows = (stack.services || []).map((sv) => {
            const actions = [];
            if (canWrite()) {
                const input = h('input', { type: 'number', min: '0', max: '1000', value: String(sv.replicas), 'aria-label': `replicas of ${sv.name}`, class: 'replicas', size: '4' });
                actions.push(input,
                    h('button', { 'data-action': 'scale', onclick: async () => {
                        const n = Number(input.value);
                        if (!(await confirmAction(`Scale ${sv.name} from ${sv.replicas} to ${n} replicas?`))) return;
                        try { await api('/v1/scale/' + encodeURIComponent(sv.name), { method: 'POST', json: { replicas: n } }); refresh(); } catch (err) { showError(box, err); }
                    } }, 'Scale'),
                    h('button', { 'data-action': 'restart', onclick: async () => {
                        if (!(await confirmAction(`Restart every instance of ${sv.name}, one at a time?`))) return;
                        try { await api('/v1/restart/' + encodeURIComponent(sv.name), { method: 'POST' }); refresh(); } catch (err) { showError(box, err); }
                    } }, 'Restart'));
            }
            return h('tr', { 'data-service': sv.name },
                h('td', {}, h('a', { href: '#/service/' + encodeURIComponent(sv.name) }, sv.name)),
                h('td', { class: 'num' }, `${sv.ready}/${sv.replicas}`),
                h('td', { class: 'num' }, String(sv.instances)),
                h('td', { class: 'num' }, num(sv.rps)),
                h('td', { class: 'num' }, ms(sv.p99_ms)),
                h('td', {}, sv.restart && sv.restart.state === 'running' ? `restarting ${sv.restart.done}/${sv.restart.total}` : ''),
                h('td', {}, h('div', { class: 'row' }, actions)));
        });
        const irows = (inst || []).map((i) => h('tr', { 'data-instance': i.id },
            h('td', { class: 'mono' }, i.id), h('td', {}, i.service), h('td', {}, i.state),
            h('td', {}, h('span', { class: 'badge ' + (i.health === 'passing' ? 'ok' : i.health === 'critical' ? 'bad' : 'warn') }, i.health)),
            h('td', { class: 'num' }, String(i.pid || '')), h('td', { class: 'num' }, String(i.port || '')),
            h('td', { class: 'num' }, String(i.restarts)), h('td', { class: 'num' }, dur(i.uptime_ms)), h('td', { class: 'num' }, num(i.rps))));
        box.replaceChildren(
            table(['service', { label: 'ready', num: 1 }, { label: 'instances', num: 1 }, { label: 'rps', num: 1 }, { label: 'p99', num: 1 }, 'state', canWrite() ? 'actions' : ''], rows),
            h('h2', {}, 'Instances'),
            table(['instance', 'service', 'state', 'health', { label: 'pid', num: 1 }, { label: 'port', num: 1 }, { label: 'restarts', num: 1 }, { label: 'uptime', num: 1 }, { label: 'rps', num: 1 }], irows));
    };
    refresh();
    return { live: true, refresh };
}

// ---- service detail ------------------------------------------------------------------------------
function chart(el, title, t, series, fmt) {
    const width = Math.max(280, el.clientWidth - 16);
    return new uPlot({
        title, width, height: 200,
        scales: { x: { time: true } },
        axes: [{}, { size: 64, values: (u, vals) => vals.map(fmt) }],
        series: [{}, ...series.map((sr) => ({ label: sr.label, stroke: sr.color, width: 2, spanGaps: false }))],
    }, [t, ...series.map((sr) => sr.data)], el);
}
function viewService(root, name) {
    root.append(h('p', {}, h('a', { href: '#/services' }, '← Services')), h('h1', {}, name));
    const sel = h('select', { id: 'window', 'aria-label': 'Time window' }, ['5m', '15m', '1h', '6h', '24h'].map((w) => h('option', { value: w }, w)));
    const box = h('div', {});
    root.append(h('div', { class: 'row' }, h('label', { for: 'window' }, 'Window', sel)), box);
    let plots = [];
    const refresh = async () => {
        let hist, health;
        try {
            [hist, health] = await Promise.all([
                api(`/v1/metrics/history?service=${encodeURIComponent(name)}&window=${sel.value}`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
                api('/v1/health/service/' + encodeURIComponent(name)).catch(() => []),
            ]);
        } catch (err) {
            box.replaceChildren();
            showError(box, err);
            return;
        }
        for (const p of plots) p.destroy();
        plots = [];
        const parts = [];
        if (!hist) parts.push(h('p', { class: 'muted' }, 'No request has reached this service yet.'));
        else {
            const pts = hist.points || [];
            const t = pts.map((p) => p.t);
            const col = (k) => pts.map((p) => p[k]);
            const c1 = h('div', { class: 'chart' }), c2 = h('div', { class: 'chart' }), c3 = h('div', { class: 'chart' });
            parts.push(h('div', { class: 'charts' }, c1, c2, c3));
            box.replaceChildren(...parts);
            plots.push(chart(c1, 'Requests/s', t, [{ label: 'rps', color: '#0550ae', data: col('rps') }], (v) => num(v)));
            plots.push(chart(c2, 'Error ratio', t, [{ label: 'errors', color: '#cf222e', data: col('error_ratio') }], (v) => (v === null ? '–' : (100 * v).toFixed(1) + '%')));
            plots.push(chart(c3, 'Latency (ms)', t, [
                { label: 'p50', color: '#1a7f37', data: col('p50') },
                { label: 'p95', color: '#9a6700', data: col('p95') },
                { label: 'p99', color: '#cf222e', data: col('p99') }], (v) => num(v)));
            if (hist.slo) {
                const slo = hist.slo;
                parts.push(h('h2', {}, 'SLO'), h('p', {}, `availability ${slo.availability ? num(slo.availability.actual, 3) + ' % of ' + slo.availability.objective + ' %' : '–'}; error budget left ${slo.budget_left === undefined ? '–' : pct(slo.budget_left)}`));
            }
        }
        const hrows = (health || []).map((e) => h('tr', {},
            h('td', { class: 'mono' }, e.Service.ID), h('td', {}, `${e.Service.Address || '127.0.0.1'}:${e.Service.Port}`),
            h('td', {}, (e.Service.Meta && e.Service.Meta.version) || ''),
            h('td', {}, (e.Checks || []).map((c) => h('span', { class: 'badge ' + (c.Status === 'passing' ? 'ok' : c.Status === 'critical' ? 'bad' : 'warn') }, c.Status)))));
        parts.push(h('h2', {}, 'Registered instances'), hrows.length ? table(['id', 'address', 'version', 'checks'], hrows) : h('p', { class: 'muted' }, 'None registered.'));
        const charts = box.querySelector('.charts');
        box.replaceChildren(...parts);
        if (charts && !box.contains(charts)) box.prepend(charts);
        parts.push(h('p', {}, h('a', { href: '#/logs?service=' + encodeURIComponent(name) }, 'Logs of ' + name), ' · ', h('a', { href: '#/traces?service=' + encodeURIComponent(name) }, 'Traces of ' + name)));
        box.append(parts[parts.length - 1]);
    };
    sel.addEventListener('change', refresh);
    refresh();
    return { live: true, refresh, destroy: () => plots.forEach((p) => p.destroy()) };
}

// ---- traces --------------------------------------------------------------------------------------
function viewTraces(root, q) {
    const p = params(q);
    root.append(h('h1', {}, 'Traces'));
    const svc = h('select', { id: 'tr-service', name: 'serviceName' }, h('option', { value: '' }, 'any'));
    const minDur = h('input', { id: 'tr-min', type: 'number', min: '0', value: p.get('minMs') || '', size: '6' });
    const lookback = h('select', { id: 'tr-lookback' }, [['15m', 900000], ['1h', 3600000], ['6h', 21600000], ['1 day', 86400000]].map(([l, v]) => h('option', { value: String(v) }, l)));
    lookback.value = '3600000';
    const errOnly = h('input', { id: 'tr-err', type: 'checkbox' });
    const limit = h('input', { id: 'tr-limit', type: 'number', min: '1', max: '1000', value: '20', size: '4' });
    const box = h('div', {});
    const search = async (e) => {
        if (e) e.preventDefault();
        const qs = new URLSearchParams({ limit: limit.value || '20', lookback: lookback.value });
        if (svc.value) qs.set('serviceName', svc.value);
        if (minDur.value) qs.set('minDuration', String(Number(minDur.value) * 1000));
        if (errOnly.checked) qs.set('annotationQuery', 'error');
        box.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
        try {
            const traces = await api('/api/v2/traces?' + qs);
            const rows = traces.map((spans) => {
                const rootSpan = spans.find((x) => !x.parentId) || spans[0];
                const services = [...new Set(spans.map((x) => x.localEndpoint && x.localEndpoint.serviceName).filter(Boolean))];
                const errors = spans.filter((x) => x.tags && x.tags.error !== undefined).length;
                return h('tr', { 'data-trace': rootSpan.traceId },
                    h('td', { class: 'mono' }, h('a', { href: '#/trace/' + rootSpan.traceId }, rootSpan.traceId)),
                    h('td', {}, rootSpan.name || ''), h('td', {}, services.join(', ')),
                    h('td', {}, new Date(rootSpan.timestamp / 1000).toLocaleTimeString()),
                    h('td', { class: 'num' }, ms((rootSpan.duration || 0) / 1000)), h('td', { class: 'num' }, String(spans.length)),
                    h('td', {}, errors ? h('span', { class: 'badge bad' }, `${errors} error`) : ''));
            });
            box.replaceChildren(rows.length ? table(['trace', 'root', 'services', 'started', { label: 'duration', num: 1 }, { label: 'spans', num: 1 }, 'status'], rows) : h('p', { class: 'muted' }, 'No trace matches.'));
        } catch (err) {
            box.replaceChildren();
            showError(box, err);
        }
    };
    root.append(h('form', { class: 'row', onsubmit: search, role: 'search' },
        h('label', { for: 'tr-service' }, 'Service', svc), h('label', { for: 'tr-min' }, 'Min duration (ms)', minDur),
        h('label', { for: 'tr-lookback' }, 'Since', lookback), h('label', { for: 'tr-limit' }, 'Limit', limit),
        h('label', { for: 'tr-err' }, 'Errors only', errOnly), h('button', { class: 'primary', type: 'submit' }, 'Search')), box);
    api('/api/v2/services').then((names) => {
        for (const n of names || []) svc.append(h('option', { value: n }, n));
        if (p.get('service')) svc.value = p.get('service');
        search();
    }).catch((err) => showError(box, err));
    return null;
}
function viewTrace(root, id) {
    root.append(h('p', {}, h('a', { href: '#/traces' }, '← Traces')), h('h1', {}, 'Trace ', h('span', { class: 'mono' }, id)),
        h('p', {}, h('a', { href: '#/logs?trace=' + id }, 'Logs of this trace')));
    const box = h('div', { class: 'wf', role: 'list', 'aria-label': 'Spans' });
    root.append(box);
    api('/api/v2/trace/' + id).then((spans) => {
        const byId = new Map(spans.map((x) => [x.id, x]));
        const depth = (x) => { let d = 0; let c = x; const seen = new Set(); while (c && c.parentId && byId.has(c.parentId) && !seen.has(c.id)) { seen.add(c.id); c = byId.get(c.parentId); d++; } return d; };
        const t0 = Math.min(...spans.map((x) => x.timestamp || 0));
        const t1 = Math.max(...spans.map((x) => (x.timestamp || 0) + (x.duration || 0)));
        const total = Math.max(1, t1 - t0);
        const kids = new Map();
        for (const x of spans) { const k = x.parentId && byId.has(x.parentId) ? x.parentId : ''; (kids.get(k) || kids.set(k, []).get(k)).push(x); }
        const ordered = [];
        const walk = (k) => { for (const x of (kids.get(k) || []).sort((a, b) => a.timestamp - b.timestamp)) { ordered.push(x); if (x.id !== k) walk(x.id); } };
        walk('');
        for (const x of ordered) {
            const svc = (x.localEndpoint && x.localEndpoint.serviceName) || '?';
            const tags = Object.entries(x.tags || {}).map(([k, v]) => `${k}=${v}`).join(' ');
            const bar = h('span', { class: x.tags && x.tags.error !== undefined ? 'err' : null, title: tags });
            bar.style.left = (100 * ((x.timestamp || t0) - t0)) / total + '%';
            bar.style.width = (100 * (x.duration || 0)) / total + '%';
            const name = h('div', { class: 'name', role: 'listitem', title: tags }, '\u00a0'.repeat(2 * depth(x)), `${svc}: ${x.name || ''} `, h('span', { class: 'muted' }, `${ms((x.duration || 0) / 1000)}${x.kind ? ' ' + x.kind.toLowerCase() : ''}`));
            box.append(name, h('div', { class: 'bar', 'aria-hidden': 'true' }, bar));
        }
        const tagRows = ordered.filter((x) => x.tags && Object.keys(x.tags).length).map((x) => h('tr', {}, h('td', {}, x.name || ''), h('td', { class: 'mono' }, Object.entries(x.tags).map(([k, v]) => `${k}=${v}`).join('  '))));
        if (tagRows.length) root.append(h('h2', {}, 'Decisions and tags per hop'), table(['span', 'tags'], tagRows));
    }).catch((err) => showError(root, err));
    return null;
}

// ---- logs ----------------------------------------------------------------------------------------
function viewLogs(root, q) {
    const p = params(q);
    root.append(h('h1', {}, 'Logs'));
    const text = h('input', { id: 'lg-q', type: 'search', value: p.get('q') || '', placeholder: 'words, "a phrase", pre*' });
    const svc = h('input', { id: 'lg-service', value: p.get('service') || '', size: '10' });
    const level = h('select', { id: 'lg-level' }, ['', 'debug', 'info', 'warn', 'error'].map((l) => h('option', { value: l }, l || 'any')));
    level.value = p.get('level') || '';
    const trace = h('input', { id: 'lg-trace', value: p.get('trace') || '', size: '34', class: 'mono' });
    const tail = h('input', { id: 'lg-tail', type: 'checkbox' });
    const status = h('p', { class: 'muted', role: 'status' });
    const body = h('tbody', {});
    let lastSeq = 0;
    const qs = () => {
        const u = new URLSearchParams({ limit: '200' });
        if (text.value.trim()) u.set('q', text.value.trim());
        if (svc.value.trim()) u.set('service', svc.value.trim());
        if (level.value) u.set('level', level.value);
        if (trace.value.trim()) u.set('trace', trace.value.trim());
        return u;
    };
    const row = (l) => h('tr', { 'data-seq': String(l.seq) },
        h('td', { class: 'mono' }, new Date(l.ms).toLocaleTimeString()), h('td', {}, l.instance || l.service || ''),
        h('td', {}, l.level || ''), h('td', { class: 'logline' }, l.message || l.line || ''),
        h('td', {}, l.trace_id ? h('a', { href: '#/trace/' + l.trace_id, class: 'mono' }, l.trace_id.slice(0, 8)) : ''));
    const search = async (e) => {
        if (e) e.preventDefault();
        status.textContent = 'Searching…';
        try {
            const lines = await api('/v1/logs?' + qs());
            body.replaceChildren(...lines.map(row));
            lastSeq = lines.length ? lines[lines.length - 1].seq : lastSeq;
            status.textContent = `${lines.length} lines`;
        } catch (err) {
            status.textContent = '';
            body.replaceChildren(h('tr', {}, h('td', { colspan: '5', class: 'error', role: 'alert' }, String(err.message))));
        }
    };
    const follow = async () => {
        if (!tail.checked) return;
        const u = qs();
        u.set('after', String(lastSeq));
        try {
            const lines = await api('/v1/logs?' + u);
            if (lines.length) {
                body.append(...lines.map(row));
                lastSeq = lines[lines.length - 1].seq;
                while (body.children.length > 1000) body.firstChild.remove();
            }
        } catch { /* shown on the next search */ }
    };
    root.append(h('form', { class: 'row', role: 'search', onsubmit: search },
        h('label', { for: 'lg-q' }, 'Text', text), h('label', { for: 'lg-service' }, 'Service', svc),
        h('label', { for: 'lg-level' }, 'Level', level), h('label', { for: 'lg-trace' }, 'Trace id', trace),
        h('label', { for: 'lg-tail' }, 'Live tail', tail), h('button', { class: 'primary', type: 'submit' }, 'Search')),
    status, h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['time', 'source', 'level', 'message', 'trace'].map((x) => h('th', { scope: 'col' }, x)))), body)));
    search();
    const timer = setInterval(follow, 2000);
    return { destroy: () => clearInterval(timer) };
}

// ---- config --------------------------------------------------------------------------------------
const b64dec = (v) => { if (v === null || v === undefined) return null; try { return new TextDecoder().decode(Uint8Array.from(atob(v), (c) => c.charCodeAt(0))); } catch { return ''; } };
function viewConfig(root, q) {
    const p = params(q);
    root.append(h('h1', {}, 'Config'));
    const prefix = h('input', { id: 'cf-prefix', value: p.get('prefix') || (session.prefix || 'config/'), size: '24' });
    const list = h('div', {});
    const detail = h('div', { id: 'cf-detail' });
    let es = null;
    const loadKeys = async (e) => {
        if (e) e.preventDefault();
        let entries = [];
        try {
            entries = await api('/v1/kv/' + prefix.value.split('/').map(encodeURIComponent).join('/') + '?recurse');
        } catch (err) {
            if (err.status !== 404) { list.replaceChildren(); showError(list, err); return; }
        }
        list.replaceChildren(entries.length ? table(['key', 'value', { label: 'index', num: 1 }], entries.map((en) => h('tr', { 'data-key': en.Key },
            h('td', { class: 'mono' }, h('a', { href: '#/config?prefix=' + encodeURIComponent(prefix.value) + '&key=' + encodeURIComponent(en.Key) }, en.Key)),
            h('td', { class: 'mono' }, en.Secret && en.Value === null ? '(secret)' : (b64dec(en.Value) || '').slice(0, 80)),
            h('td', { class: 'num' }, String(en.ModifyIndex))))) : h('p', { class: 'muted' }, 'No key under this prefix.'));
        if (es) es.close();
        es = new EventSource('/v1/events/kv/' + prefix.value.split('/').map(encodeURIComponent).join('/'));
        const again = () => { loadKeys(); if (p.get('key')) loadKey(p.get('key')); };
        es.addEventListener('set', again);
        es.addEventListener('delete', again);
    };
    const keyPath = (k) => k.split('/').map(encodeURIComponent).join('/');
    const loadKey = async (key) => {
        let cur = null, hist = [];
        try {
            cur = (await api('/v1/kv/' + keyPath(key)))[0];
        } catch (err) { if (err.status !== 404) { detail.replaceChildren(); showError(detail, err); return; } }
        try { hist = await api('/v1/config/history/' + keyPath(key)); } catch { hist = []; }
        const value = cur ? b64dec(cur.Value) : null;
        const parts = [h('h2', {}, 'Key ', h('span', { class: 'mono' }, key)),
            h('p', { class: 'muted' }, cur ? `version ${cur.ModifyIndex}` : 'deleted or absent')];
        const msg = h('p', { role: 'status' });
        if (canWrite() && cur && !(cur.Secret && cur.Value === null)) {
            const ta = h('textarea', { id: 'cf-value', 'aria-label': 'Value of ' + key }, value || '');
            parts.push(ta, h('div', { class: 'row' }, h('button', { class: 'primary', id: 'cf-save', onclick: async () => {
                if (!(await confirmAction(`Write ${key} (only if it is still at version ${cur.ModifyIndex})?`))) return;
                try {
                    const ok = await api('/v1/kv/' + keyPath(key) + '?cas=' + cur.ModifyIndex, { method: 'PUT', body: ta.value, headers: { 'Content-Type': 'text/plain' } });
                    msg.textContent = ok === true ? 'Saved.' : 'Not saved: the key changed meanwhile (reloaded).';
                    loadKey(key);
                } catch (err) { msg.textContent = err.message; }
            } }, 'Save (CAS)')));
        } else parts.push(h('pre', { class: 'logline', id: 'cf-value' }, value === null ? (cur && cur.Secret ? '(secret)' : '') : value));
        parts.push(msg, h('h2', {}, 'History'));
        const rows = hist.map((v) => h('tr', { 'data-index': String(v.ModifyIndex) },
            h('td', { class: 'num' }, String(v.ModifyIndex)), h('td', { class: 'mono' }, v.Deleted ? '(deleted)' : (b64dec(v.Value) || '').slice(0, 120)),
            h('td', {}, canWrite() && !v.Deleted && cur && v.ModifyIndex !== cur.ModifyIndex ? h('button', { 'data-action': 'rollback', onclick: async () => {
                if (!(await confirmAction(`Roll ${key} back to version ${v.ModifyIndex}?`))) return;
                try {
                    const ok = await api(`/v1/config/rollback/${keyPath(key)}?index=${v.ModifyIndex}&cas=${cur.ModifyIndex}`, { method: 'POST' });
                    msg.textContent = ok === false ? 'Not rolled back: the key changed meanwhile.' : `Rolled back to version ${v.ModifyIndex}.`;
                    loadKey(key);
                    loadKeys();
                } catch (err) { msg.textContent = err.message; }
            } }, 'Roll back') : '')));
        parts.push(rows.length ? table([{ label: 'version', num: 1 }, 'value', ''], rows) : h('p', { class: 'muted' }, 'No history.'));
        detail.replaceChildren(...parts);
    };
    root.append(h('form', { class: 'row', onsubmit: loadKeys }, h('label', { for: 'cf-prefix' }, 'Prefix', prefix), h('button', { class: 'primary', type: 'submit' }, 'List')), list, detail);
    loadKeys();
    if (p.get('key')) loadKey(p.get('key'));
    return { destroy: () => es && es.close() };
}

// ---- boot ----------------------------------------------------------------------------------------
window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', async () => {
    try {
        const me = await api('/ui/session');
        if (!me || me.logged_in === false) throw new Error('no session');
        session = me;
        start();
    } catch {
        showLogin('');
    }
});
