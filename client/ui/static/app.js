// kubeatlas web view: a fleet overview, a map of components over nodes per
// cluster, a node's page, an instance's evidence chain and the findings.
// Every URL names what it shows, so a link can be shared; every view
// follows the Watch stream and updates without reloading.
import { AuthError, Watcher, call, listAll, setToken, token } from './api.js';

const main = document.getElementById('main');
const live = document.getElementById('live');
let W = null; // words.json: the server's words for the API's enums
let current = null; // the view on screen: { stop() }

// ---- helpers ---------------------------------------------------------------

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
// esc makes any text from the server safe inside HTML text and attributes.
function esc(s) { return String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]); }
function enc(s) { return encodeURIComponent(s); }
function short(e, prefix) { return String(e || '').replace(prefix, ''); }

function howWord(h) { return W.how[h || 'DEPLOYMENT_KIND_UNSPECIFIED'] || 'unknown'; }
function howClass(h) { return 'how-' + short(h || 'DEPLOYMENT_KIND_UNSPECIFIED', 'DEPLOYMENT_KIND_'); }
// Letters for the map: a cell is readable without its colour.
const LETTERS = {
  DEPLOYMENT_KIND_STATIC_POD: 'SP', DEPLOYMENT_KIND_HOST_PROCESS: 'HP', DEPLOYMENT_KIND_DAEMONSET: 'DS',
  DEPLOYMENT_KIND_DEPLOYMENT: 'DP', DEPLOYMENT_KIND_STATEFULSET: 'SS', DEPLOYMENT_KIND_REPLICASET: 'RS',
  DEPLOYMENT_KIND_JOB: 'JB', DEPLOYMENT_KIND_BARE_POD: 'BP', DEPLOYMENT_KIND_UNSPECIFIED: '??',
};
function letters(h) { return LETTERS[h || 'DEPLOYMENT_KIND_UNSPECIFIED'] || '??'; }
const SEVERITIES = ['SEVERITY_CRITICAL', 'SEVERITY_WARNING', 'SEVERITY_INFO'];
// MAP_NODES bounds what the page fetches and draws at once for the whole
// fleet: the map of every cluster, and every node for kubelet versions.
const MAP_NODES = 5000;
function sevBadge(s) { return `<span class="badge sev-${esc(short(s, 'SEVERITY_'))}">${esc(W.severity[s] || 'unknown')}</span>`; }

function clusterURL(c) { return '/ui/clusters/' + enc(c); }
function nodeURL(c, n) { return clusterURL(c) + '/nodes/' + enc(n); }
function instanceURL(c, n, comp) { return nodeURL(c, n) + '/components/' + enc(comp); }

function compRank(name) {
  const i = W.components.indexOf(name);
  return i < 0 ? W.components.length : i;
}
function byComponent(a, b) { return compRank(a) - compRank(b) || (a < b ? -1 : a > b ? 1 : 0); }

// debounce runs f at most once per wait, after the last call.
function debounce(f, wait) {
  let t = null;
  const d = () => { clearTimeout(t); t = setTimeout(f, wait); };
  d.cancel = () => clearTimeout(t);
  return d;
}

// show replaces what a box shows with html, unless it shows that already. A
// redraw keeps the keyboard focus (on the link to the same place, or the
// same control), the scroll positions of wide tables, and what is being
// typed elsewhere on the page. It reports whether it replaced anything.
const shown = new WeakMap();
function show(html, box = main) {
  if (shown.get(box) === html) return false;
  const focus = focusKey(box);
  const scrolls = [...box.querySelectorAll('.scroll')].map((el) => [el.scrollLeft, el.scrollTop]);
  box.innerHTML = html;
  shown.set(box, html);
  box.querySelectorAll('.scroll').forEach((el, i) => { if (scrolls[i]) [el.scrollLeft, el.scrollTop] = scrolls[i]; });
  const el = focus && findFocus(box, focus);
  if (el) el.focus({ preventScroll: true });
  return true;
}

function focusKey(box) {
  const a = document.activeElement;
  if (!a || a === box || !box.contains(a)) return null;
  return { tag: a.tagName, id: a.id, href: a.getAttribute('href'), index: [...box.querySelectorAll(a.tagName)].indexOf(a) };
}

function findFocus(box, k) {
  if (k.id) return box.querySelector('#' + CSS.escape(k.id));
  const all = [...box.querySelectorAll(k.tag)];
  if (k.href) return all.find((e) => e.getAttribute('href') === k.href) || null;
  return all[k.index] || null;
}

// age says how long ago an RFC 3339 time was, in words.
function age(ts) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 90) return s + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}

function setLive(state) {
  live.textContent = { live: '● live', connecting: 'connecting…', offline: 'offline: retrying' }[state] || '';
  live.classList.toggle('off', state === 'offline');
}

// ready says the view is drawn: data-ready holds when it first was (from
// the navigation's start), data-updated when it was last redrawn.
function ready(view) {
  const now = String(Math.round(performance.now()));
  if (document.body.dataset.view === view && document.body.dataset.ready) {
    document.body.dataset.updated = now;
    return;
  }
  document.body.dataset.view = view;
  document.body.dataset.ready = now;
}

function showError(err) {
  if (err instanceof AuthError) { signIn(err); return; }
  main.insertAdjacentHTML('afterbegin', `<div class="alert" role="alert">${esc(err.message || err)}</div>`);
  shown.delete(main); // the next draw replaces the alert
  document.body.dataset.error = err.message || String(err);
}

// signIn replaces the view: nothing the server holds is shown without
// credentials. A browser with a client certificate never gets here.
function signIn(err) {
  if (current) current.stop();
  current = null;
  const why = `${token() ? 'The aggregator refused this token' : 'This aggregator answers query clients only'}: ${esc(err.message)}.`;
  const form0 = document.getElementById('signin-form');
  document.body.dataset.view = 'signin';
  delete document.body.dataset.ready;
  setLive('');
  if (form0) { // a second refusal must not wipe what is being typed
    document.getElementById('signin-why').innerHTML = why;
    return;
  }
  shown.delete(main);
  main.innerHTML = `<h1>Sign in</h1>
<div class="signin">
<p id="signin-why" role="alert">${why}</p>
<p>Use a browser with a query client's certificate (<code>kubeatlas certs --client NAME</code>), or give a bearer token from the aggregator's <code>--query-token-file</code>. The token stays in this tab.</p>
<form id="signin-form"><label for="token">Bearer token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button></form></div>`;
  const form = document.getElementById('signin-form');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(form.token.value.trim());
    route();
  });
  form.token.focus();
}

// clusterStale: a fleet view no longer hears from the cluster's aggregator
// (its rows are the last it published).
function clusterStale(c) {
  return c.freshness === 'FRESHNESS_STALE' || c.freshness === 'FRESHNESS_UNREACHABLE';
}

// ---- the fleet -----------------------------------------------------------

function fleetView() {
  const ctl = new AbortController();
  const findings = new Map(); // id -> finding
  let clusters = [];
  let kubelets = new Map(); // cluster -> Set of kubelet versions
  let nodesFetched = false, nodesAt = 0;
  let synced = false;
  const render = () => {
    const counts = new Map();
    for (const f of findings.values()) {
      const c = counts.get(f.cluster) || {};
      c[f.severity] = (c[f.severity] || 0) + 1;
      counts.set(f.cluster, c);
    }
    // A fleet view says who published each cluster, and when.
    const fleet = clusters.some((c) => c.publisher);
    const rows = clusters.map((c) => {
      const n = c.nodeCount || 0, r = c.reportingNodeCount || 0;
      const stale = clusterStale(c);
      const fc = counts.get(c.name) || {};
      const sev = SEVERITIES.map((s) => `<td class="num">${fc[s] ? sevBadge(s) + ' ' + fc[s] : '0'}</td>`).join('');
      const kv = [...(kubelets.get(c.name) || [])].sort().join(', ') || (nodesFetched ? '' : 'on the cluster\'s page');
      const state = [];
      if (!c.apiConnected) state.push('API server not connected');
      if (c.freshness && c.freshness !== 'FRESHNESS_UNSPECIFIED') state.push(W.freshness[c.freshness]);
      const pub = fleet ? `<td>${esc(c.publisher || '—')}</td><td>${c.updatedAt ? esc(age(c.updatedAt)) : '—'}</td>` : '';
      return `<tr data-cluster="${esc(c.name)}"${stale ? ' class="stale"' : ''}>
<th scope="row"><a href="${clusterURL(c.name)}">${esc(c.name)}</a>${stale ? ' <span class="badge stale" title="not current">stale</span>' : ''}</th>
<td title="${esc(W.modeExplained[c.mode || 'CLUSTER_MODE_UNSPECIFIED'])}">${esc(W.mode[c.mode || 'CLUSTER_MODE_UNSPECIFIED'])}</td>
<td>${esc(c.provider || '—')}</td><td class="num">${n}</td>
<td class="num">${r}/${n}${n ? ' (' + Math.round((100 * r) / n) + '%)' : ''}</td>${sev}
<td>${esc(c.kubernetesVersion || '—')}</td><td>${esc(kv || '—')}</td><td data-state>${esc(state.join('; ') || 'live')}</td>${pub}</tr>`;
    }).join('');
    show(`<h1>Fleet</h1>
<p class="muted">${clusters.length} clusters, ${clusters.reduce((a, c) => a + (c.nodeCount || 0), 0)} nodes. <a href="/ui/map">Map of every cluster</a></p>
<table id="clusters"><caption class="muted">Agent coverage is nodes whose agent reports, of nodes known.</caption>
<thead><tr><th scope="col">Cluster</th><th scope="col">Mode</th><th scope="col">Provider</th><th scope="col">Nodes</th><th scope="col">Agents</th>
<th scope="col">Critical</th><th scope="col">Warning</th><th scope="col">Info</th><th scope="col">Kubernetes</th><th scope="col">Kubelets</th><th scope="col">State</th>
${fleet ? '<th scope="col">Publisher</th><th scope="col">Updated</th>' : ''}</tr></thead>
<tbody>${rows || '<tr><td colspan="11">No clusters yet.</td></tr>'}</tbody></table>`);
    if (synced) ready('fleet');
  };
  const later = debounce(render, 200);
  const load = async () => {
    try {
      const cs = await listAll('ListClusters', {}, 'clusters', ctl.signal);
      // Kubelet versions come from every node: only for fleets small enough.
      const total = cs.reduce((a, c) => a + (c.nodeCount || 0), 0);
      nodesFetched = total <= MAP_NODES;
      if (!nodesFetched) kubelets = new Map();
      // Versions change seldom: the nodes are asked for once a minute, the
      // clusters' coverage and freshness every few seconds.
      if (nodesFetched && Date.now() - nodesAt > 60000) {
        const nodes = await listAll('ListNodes', {}, 'nodes', ctl.signal);
        nodesAt = Date.now();
        kubelets = new Map();
        for (const n of nodes) {
          if (!n.kubeletVersion) continue;
          if (!kubelets.has(n.cluster)) kubelets.set(n.cluster, new Set());
          kubelets.get(n.cluster).add(n.kubeletVersion);
        }
      }
      clusters = cs;
      render();
    } catch (err) { if (!ctl.signal.aborted) showError(err); }
  };
  const refresh = debounce(load, 1000);
  const w = new Watcher({ skipComponents: true, maxBatch: 500 }, (type, e) => {
    if (type === 'ERROR') { showError(e); return; }
    if (type === 'WATCH_EVENT_TYPE_RESYNC') { findings.clear(); synced = false; return; }
    if (type === 'WATCH_EVENT_TYPE_SYNCED') { synced = true; later(); return; }
    if (!e.finding) return;
    if (type === 'WATCH_EVENT_TYPE_DELETED') findings.delete(e.finding.id); else findings.set(e.finding.id, e.finding);
    if (synced) { later(); refresh(); }
  }, setLive);
  load().then(() => { if (!ctl.signal.aborted) w.start(); });
  // Coverage and freshness change without findings changing.
  const timer = setInterval(load, 5000);
  return { stop() { ctl.abort(); w.stop(); clearInterval(timer); later.cancel(); refresh.cancel(); } };
}

// ---- the map ---------------------------------------------------------------

// roleGroup puts control-plane nodes first, then nodes by their first role.
function roleGroup(n) {
  const roles = n.roles || [];
  if (roles.includes('control-plane') || roles.includes('master')) return 'control-plane';
  return roles[0] || 'worker';
}

// nodeStale: the node's agent stopped reporting, or never did. A bundle's
// snapshot (OFFLINE) is as current as the bundle.
const STALE_AGENT = ['AGENT_STATE_STALE', 'AGENT_STATE_EXPIRED', 'AGENT_STATE_NO_AGENT'];
function nodeStale(n) {
  return STALE_AGENT.includes(n.agentState);
}

// mapTable draws one cluster's map: components as rows, nodes as columns
// grouped by role, each cell a link to what runs there.
function mapTable(cluster, nodes, insts) {
  const cells = new Map(); // component -> node -> [instances]
  for (const i of insts) {
    if (!cells.has(i.component)) cells.set(i.component, new Map());
    const row = cells.get(i.component);
    if (!row.has(i.node)) row.set(i.node, []);
    row.get(i.node).push(i);
  }
  // Nodes the API or an agent knows, plus any an instance names.
  const byName = new Map(nodes.map((n) => [n.name, n]));
  for (const i of insts) if (!byName.has(i.node)) byName.set(i.node, { name: i.node, cluster });
  const groups = new Map();
  for (const n of byName.values()) {
    const g = roleGroup(n);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(n);
  }
  const order = [...groups.keys()].sort((a, b) => (a === 'control-plane' ? -1 : b === 'control-plane' ? 1 : a < b ? -1 : 1));
  const cols = [];
  for (const g of order) cols.push(...groups.get(g).sort((a, b) => (a.name < b.name ? -1 : 1)));
  const comps = [...cells.keys()].sort(byComponent);
  const groupRow = order.map((g) => `<th scope="colgroup" colspan="${groups.get(g).length}" class="group">${esc(g)}</th>`).join('');
  const nodeRow = cols.map((n) => {
    const stale = nodeStale(n);
    const state = n.agentState ? W.agentState[n.agentState] : 'unknown';
    return `<th scope="col" class="node${stale ? ' stale' : ''}" data-node="${esc(n.name)}" title="${esc(n.name)}: agent ${esc(state)}"><a href="${nodeURL(cluster, n.name)}">${esc(n.name)}${stale ? ' ⚠' : ''}</a></th>`;
  }).join('');
  const body = comps.map((comp) => {
    const row = cells.get(comp);
    const tds = cols.map((n) => {
      const here = row.get(n.name);
      if (!here) return '<td></td>';
      const hows = new Map();
      for (const i of here) hows.set(i.how || 'DEPLOYMENT_KIND_UNSPECIFIED', (hows.get(i.how || 'DEPLOYMENT_KIND_UNSPECIFIED') || 0) + 1);
      const label = [...hows].map(([h, k]) => howWord(h) + (k > 1 ? ' ×' + k : '')).join(', ');
      const badges = [...hows].map(([h, k]) => `<span class="badge ${howClass(h)}" data-how="${esc(h)}">${letters(h)}${k > 1 ? '×' + k : ''}</span>`).join('');
      const noproc = here.every((i) => !i.hasProcess);
      return `<td data-cell="${esc(n.name)}|${esc(comp)}"><a href="${instanceURL(cluster, n.name, comp)}" class="${noproc ? 'noproc' : ''}" aria-label="${esc(comp)} on ${esc(n.name)}: ${esc(label)}${noproc ? ', no process' : ''}" title="${esc(comp)} on ${esc(n.name)}: ${esc(label)}${noproc ? ' (no process)' : ''}">${badges}</a></td>`;
    }).join('');
    return `<tr><th scope="row" class="comp">${esc(comp)}</th>${tds}</tr>`;
  }).join('');
  return `<div class="scroll"><table class="map" data-map="${esc(cluster)}">
<thead><tr><th class="comp" rowspan="2">component</th>${groupRow}</tr><tr>${nodeRow}</tr></thead>
<tbody>${body || `<tr><td colspan="${cols.length + 1}">No components known yet.</td></tr>`}</tbody></table></div>`;
}

function legend() {
  const items = Object.keys(LETTERS).filter((h) => h !== 'DEPLOYMENT_KIND_UNSPECIFIED')
    .map((h) => `<li><span class="badge ${howClass(h)}">${letters(h)}</span> ${esc(howWord(h))}</li>`).join('');
  return `<ul class="legend" aria-label="Legend">${items}<li><span class="badge how-UNSPECIFIED">??</span> not known</li>
<li><span class="badge stale">⚠</span> agent not reporting</li><li><span class="noproc">struck through</span>: no process found</li></ul>`;
}

// mapView shows one cluster (with its summary and findings) or, without a
// cluster, every cluster's map.
function mapView(cluster) {
  const ctl = new AbortController();
  const insts = new Map(); // id -> instance
  const findings = new Map();
  let nodes = [], info = null, synced = false, rendered = false;
  const render = () => {
    const byCluster = new Map();
    for (const i of insts.values()) {
      if (!byCluster.has(i.cluster)) byCluster.set(i.cluster, []);
      byCluster.get(i.cluster).push(i);
    }
    const nodesBy = new Map();
    for (const n of nodes) {
      if (!nodesBy.has(n.cluster)) nodesBy.set(n.cluster, []);
      nodesBy.get(n.cluster).push(n);
    }
    const names = cluster ? [cluster] : [...new Set([...byCluster.keys(), ...nodesBy.keys()])].sort();
    let html = '';
    if (cluster) {
      html += `<h1>Cluster ${esc(cluster)}</h1>` + clusterSummary(info, findings, nodes);
    } else {
      html += `<h1>Map</h1><p class="muted">${names.length} clusters, ${nodes.length} nodes, ${insts.size} component instances.</p>`;
    }
    html += legend();
    for (const c of names) {
      if (!cluster) html += `<h2><a href="${clusterURL(c)}">${esc(c)}</a></h2>`;
      html += mapTable(c, nodesBy.get(c) || [], byCluster.get(c) || []);
    }
    show(html);
    if (!rendered) {
      // When each part of the first draw was there, for whoever measures it.
      marks.drawn = Math.round(performance.now());
      document.body.dataset.marks = JSON.stringify(marks);
    }
    rendered = true;
    ready(cluster ? 'cluster' : 'map');
  };
  const later = debounce(render, 150);
  const loadNodes = async () => {
    try {
      const [ns, cs] = await Promise.all([
        listAll('ListNodes', cluster ? { cluster } : {}, 'nodes', ctl.signal),
        cluster ? call('GetCluster', { name: cluster }, ctl.signal) : Promise.resolve(null),
      ]);
      nodes = ns;
      info = cs && cs.cluster;
      if (synced) later();
    } catch (err) { if (!ctl.signal.aborted) showError(err); }
  };
  const req = { view: 'COMPONENT_VIEW_BASIC', maxBatch: 500, skipFindings: !cluster };
  if (cluster) req.cluster = cluster;
  const w = new Watcher(req, (type, e) => {
    if (type === 'ERROR') { showError(e); return; }
    if (type === 'WATCH_EVENT_TYPE_RESYNC') { insts.clear(); findings.clear(); synced = false; return; }
    if (type === 'WATCH_EVENT_TYPE_SYNCED') {
      synced = true;
      marks.synced = marks.synced || Math.round(performance.now());
      if (nodesLoaded) render();
      return;
    }
    if (type === 'WATCH_EVENT_TYPE_RESUMED') return;
    const deleted = type === 'WATCH_EVENT_TYPE_DELETED';
    if (e.component) { if (deleted) insts.delete(e.component.id); else insts.set(e.component.id, e.component); }
    if (e.finding) { if (deleted) findings.delete(e.finding.id); else findings.set(e.finding.id, e.finding); }
    if (synced && rendered) later();
  }, setLive);
  let nodesLoaded = false;
  const marks = {};
  const start = async () => {
    if (!cluster) {
      // A map of every node is for fleets a screen can hold; larger ones
      // are drawn a cluster at a time.
      try {
        const cs = await listAll('ListClusters', {}, 'clusters', ctl.signal);
        const total = cs.reduce((a, c) => a + (c.nodeCount || 0), 0);
        if (total > MAP_NODES) {
          show(`<h1>Map</h1><p>${total} nodes are more than one map shows (${MAP_NODES}). Each cluster's map:</p>
<ul>${cs.map((c) => `<li><a href="${clusterURL(c.name)}">${esc(c.name)}</a>: ${c.nodeCount || 0} nodes</li>`).join('')}</ul>`);
          ready('map');
          return;
        }
      } catch (err) { if (!ctl.signal.aborted) showError(err); return; }
    }
    if (ctl.signal.aborted) return;
    marks.start = Math.round(performance.now());
    loadNodes().then(() => { nodesLoaded = true; marks.nodes = Math.round(performance.now()); if (synced) render(); });
    w.start();
    timer = setInterval(loadNodes, 10000);
  };
  let timer = null;
  start();
  return { stop() { ctl.abort(); w.stop(); clearInterval(timer); later.cancel(); } };
}

function clusterSummary(c, findings, nodes) {
  if (!c) return '';
  const kubelets = [...new Set(nodes.map((n) => n.kubeletVersion).filter(Boolean))].sort().join(', ');
  const ev = (c.modeEvidence || []).map((e) => `<li>${esc(e.summary)}</li>`).join('');
  const counts = {};
  for (const f of findings.values()) counts[f.severity] = (counts[f.severity] || 0) + 1;
  const sev = SEVERITIES.map((s) => `${sevBadge(s)} ${counts[s] || 0}`).join(' ');
  const ds = c.datastore ? `${esc(c.datastore.implementation || '—')} on ${esc((c.datastore.nodes || []).join(', ') || '—')}` : '—';
  const stale = clusterStale(c);
  return `<dl class="facts">
<dt>Mode</dt><dd><strong>${esc(W.mode[c.mode || 'CLUSTER_MODE_UNSPECIFIED'])}</strong>: ${esc(W.modeExplained[c.mode || 'CLUSTER_MODE_UNSPECIFIED'])}${ev ? `<ul>${ev}</ul>` : ''}</dd>
<dt>Control plane</dt><dd>${esc((c.controlPlaneNodes || []).join(', ') || '—')}</dd>
<dt>Datastore</dt><dd>${ds}</dd>
<dt>Kubernetes</dt><dd>${esc(c.kubernetesVersion || '—')}</dd>
<dt>Kubelets</dt><dd>${esc(kubelets || '—')}</dd>
<dt>Provider</dt><dd>${esc(c.provider || '—')}</dd>
<dt>Agents</dt><dd>${c.reportingNodeCount || 0} of ${c.nodeCount || 0} nodes report</dd>
<dt>API server</dt><dd>${c.apiConnected ? 'connected' : 'not connected'}</dd>
${c.publisher ? `<dt>Published by</dt><dd>${esc(c.publisher)}${c.updatedAt ? ', ' + esc(age(c.updatedAt)) : ''}${stale ? ' <span class="badge stale">' + esc(W.freshness[c.freshness]) + '</span>' : ''}</dd>` : ''}
<dt>Findings</dt><dd>${sev} · <a href="/ui/findings?cluster=${enc(c.name)}">list</a></dd>
</dl>`;
}

// ---- an instance: flags and evidence chain ---------------------------------

function chain(i) {
  const step = (k, v, title) => `<li${v ? '' : ' class="missing"'}${title ? ` title="${esc(title)}"` : ''}><span class="k">${esc(k)}</span><span class="mono">${esc(v || 'none')}</span></li>`;
  const arrow = '<li class="arrow" aria-hidden="true">⇄</li>';
  const parts = [];
  if (i.how === 'DEPLOYMENT_KIND_STATIC_POD' || i.manifestPath) parts.push(step('manifest', i.manifestPath));
  // A static pod's mirror pod is owned by its Node: the manifest says more.
  if (i.owner && i.owner.kind && i.how !== 'DEPLOYMENT_KIND_STATIC_POD') parts.push(step(i.owner.kind, i.owner.namespace ? `${i.owner.namespace}/${i.owner.name}` : i.owner.name));
  if (i.pod && i.pod.name) parts.push(step(i.how === 'DEPLOYMENT_KIND_STATIC_POD' ? 'mirror pod' : 'pod', `${i.pod.namespace}/${i.pod.name}`, i.pod.uid));
  else if (i.how === 'DEPLOYMENT_KIND_STATIC_POD') parts.push(step('mirror pod', ''));
  if (i.systemdUnit) parts.push(step('systemd unit', i.systemdUnit));
  if (i.containerId || i.container) parts.push(step('container', [i.container, (i.containerId || '').slice(0, 12)].filter(Boolean).join(' '), i.containerId));
  parts.push(step('PID', i.pid ? String(i.pid) : '', i.hasProcess ? '' : 'no process found'));
  return `<ol class="chain" aria-label="Evidence chain">${parts.join(arrow)}</ol>`;
}

function instanceHTML(i) {
  const flags = (i.flags || []).map((f) => `<tr><td class="mono">--${esc(f.name)}</td><td class="mono">${f.redacted ? '<em>redacted</em>' : esc((f.values || []).join(', '))}</td></tr>`).join('');
  const ev = (i.evidence || []).map((e) => `<li><strong>${esc(W.evidenceKind[e.kind] || '')}</strong>: ${esc(e.summary)}</li>`).join('');
  return `<section class="instance" data-instance="${esc(i.id)}">
<h2>${esc(i.implementation || i.component)} <span class="badge ${howClass(i.how)}">${letters(i.how)}</span> ${esc(howWord(i.how))}</h2>
${chain(i)}
<dl class="facts"><dt>Version</dt><dd>${esc(i.version || '—')}</dd><dt>Image</dt><dd class="mono">${esc(i.image || '—')}</dd>
<dt>Restarts</dt><dd>${i.restartCount || 0}</dd><dt>ID</dt><dd class="mono">${esc(i.id)}</dd></dl>
<h3>Flags</h3>${flags ? `<table class="flags"><thead><tr><th scope="col">Flag</th><th scope="col">Values</th></tr></thead><tbody>${flags}</tbody></table>` : '<p class="muted">No flags.</p>'}
<h3>Evidence</h3>${ev ? `<ul>${ev}</ul>` : '<p class="muted">None.</p>'}</section>`;
}

function instanceView(cluster, node, comp) {
  const ctl = new AbortController();
  const load = async () => {
    try {
      const insts = await listAll('ListComponents', { cluster, node, component: comp, view: 'COMPONENT_VIEW_FULL' }, 'components', ctl.signal);
      show(`<p><a href="${clusterURL(cluster)}">${esc(cluster)}</a> › <a href="${nodeURL(cluster, node)}">${esc(node)}</a> › ${esc(comp)}</p>
<h1>${esc(comp)} on ${esc(node)}</h1>${insts.map(instanceHTML).join('') || '<p>Nothing of this component runs on this node now.</p>'}`);
      ready('instance');
    } catch (err) { if (!ctl.signal.aborted) showError(err); }
  };
  const later = debounce(load, 300);
  const w = new Watcher({ cluster, component: comp, skipFindings: true, view: 'COMPONENT_VIEW_BASIC', maxBatch: 500 }, (type, e) => {
    if (type === 'ERROR') { showError(e); return; }
    if (e.component && e.component.node === node && synced) later();
    if (type === 'WATCH_EVENT_TYPE_SYNCED') synced = true;
  }, setLive);
  let synced = false;
  load().then(() => w.start());
  return { stop() { ctl.abort(); w.stop(); later.cancel(); } };
}

// ---- a node ------------------------------------------------------------------

function nodeView(cluster, name, params) {
  const ctl = new AbortController();
  let tokens = [''], page = 0;
  const onlyComponents = params.get('components') === '1';
  const load = async () => {
    try {
      const [got, procs, findings] = await Promise.all([
        call('GetNode', { cluster, name }, ctl.signal),
        call('ListProcesses', { cluster, node: name, pageSize: 50, pageToken: tokens[page], componentsOnly: onlyComponents }, ctl.signal),
        listAll('ListFindings', { cluster, node: name }, 'findings', ctl.signal),
      ]);
      const n = got.node || {};
      const id = n.identity || {};
      const stale = nodeStale(n);
      const comps = (got.components || []).slice().sort((a, b) => byComponent(a.component, b.component)).map((i) => `<tr>
<td><a href="${instanceURL(cluster, name, i.component)}">${esc(i.component)}</a></td><td>${esc(i.implementation)}</td>
<td><span class="badge ${howClass(i.how)}">${letters(i.how)}</span> ${esc(howWord(i.how))}</td>
<td>${i.pod && i.pod.name ? esc(i.pod.namespace + '/' + i.pod.name) : esc(i.systemdUnit || '—')}</td><td class="num">${i.pid || '—'}</td></tr>`).join('');
      const prows = (procs.processes || []).map((p) => {
        const pr = p.process || {};
        const argv = (pr.argv || []).join(' ');
        return `<tr><td class="num">${pr.pid}</td><td>${esc(pr.user || '')}</td><td>${esc((pr.components || []).map((c) => c.component).join(', '))}</td>
<td class="mono">${esc(argv.length > 160 ? argv.slice(0, 160) + '…' : argv)}</td><td class="mono">${esc(pr.systemdUnit || (pr.containerId || '').slice(0, 12))}</td></tr>`;
      }).join('');
      if (procs.nextPageToken) tokens[page + 1] = procs.nextPageToken;
      const frows = findings.map((f) => `<tr><td>${sevBadge(f.severity)}</td><td>${esc(W.findingKind[f.kind] || f.kind)}</td><td>${esc(f.summary)}</td></tr>`).join('');
      const replaced = show(`<p><a href="${clusterURL(cluster)}">${esc(cluster)}</a> › ${esc(name)}</p>
<h1>Node ${esc(name)}${stale ? ' <span class="badge stale">agent ' + esc(W.agentState[n.agentState]) + '</span>' : ''}</h1>
<dl class="facts"><dt>Roles</dt><dd>${esc((n.roles || []).join(', ') || '—')}</dd>
<dt>Agent</dt><dd data-agent-state="${esc(n.agentState || '')}">${esc(W.agentState[n.agentState || 'AGENT_STATE_UNSPECIFIED'])}${n.lastSeen ? ', last seen ' + esc(n.lastSeen) : ''}</dd>
<dt>In the API</dt><dd>${n.inApi ? 'yes' : 'no'}</dd><dt>Kubelet</dt><dd>${esc(n.kubeletVersion || '—')}</dd>
<dt>Addresses</dt><dd>${esc((n.internalIps || []).join(', ') || '—')}</dd>
<dt>Host</dt><dd>${esc([id.hostname, id.osImage, id.kernelVersion].filter(Boolean).join(' · ') || '—')}</dd>
<dt>Agent version</dt><dd>${esc(id.agentVersion || '—')}</dd></dl>
<h2>Components</h2>${comps ? `<table id="components"><thead><tr><th scope="col">Component</th><th scope="col">Implementation</th><th scope="col">How</th><th scope="col">Pod or unit</th><th scope="col">PID</th></tr></thead><tbody>${comps}</tbody></table>` : '<p class="muted">None.</p>'}
<h2>Findings</h2>${frows ? `<table id="findings"><thead><tr><th scope="col">Severity</th><th scope="col">Kind</th><th scope="col">Summary</th></tr></thead><tbody>${frows}</tbody></table>` : '<p class="muted">None.</p>'}
<h2>Processes</h2><p class="muted">${n.processCount || 0} processes. Page ${page + 1}.
<a href="?components=${onlyComponents ? '0' : '1'}">${onlyComponents ? 'Show all processes' : 'Show component processes only'}</a></p>
<table id="processes"><thead><tr><th scope="col">PID</th><th scope="col">User</th><th scope="col">Components</th><th scope="col">Command line</th><th scope="col">Unit or container</th></tr></thead><tbody>${prows}</tbody></table>
<p><button type="button" id="prev"${page === 0 ? ' disabled' : ''}>Previous page</button> <button type="button" id="next"${procs.nextPageToken ? '' : ' disabled'}>Next page</button></p>`);
      if (replaced) {
        main.querySelector('#prev').addEventListener('click', () => { page--; load(); });
        main.querySelector('#next').addEventListener('click', () => { page++; load(); });
      }
      ready('node');
    } catch (err) { if (!ctl.signal.aborted) showError(err); }
  };
  const later = debounce(load, 300);
  let synced = false;
  const w = new Watcher({ cluster, view: 'COMPONENT_VIEW_BASIC', maxBatch: 500 }, (type, e) => {
    if (type === 'ERROR') { showError(e); return; }
    if (type === 'WATCH_EVENT_TYPE_SYNCED') { synced = true; return; }
    const about = (e.component && e.component.node) || (e.finding && e.finding.node);
    if (synced && about === name) later();
  }, setLive);
  load().then(() => w.start());
  const timer = setInterval(load, 15000);
  return { stop() { ctl.abort(); w.stop(); later.cancel(); clearInterval(timer); } };
}

// ---- findings ----------------------------------------------------------------

function findingsView(params) {
  const ctl = new AbortController();
  const cluster = params.get('cluster') || '', severity = params.get('severity') || '';
  const kind = params.get('kind') || '', filter = params.get('filter') || '';
  const load = async () => {
    try {
      const [clusters, findings] = await Promise.all([
        listAll('ListClusters', {}, 'clusters', ctl.signal),
        listAll('ListFindings', { cluster, minSeverity: severity || undefined, kind: kind || undefined, filter }, 'findings', ctl.signal, 5000),
      ]);
      const opt = (v, label, sel) => `<option value="${esc(v)}"${v === sel ? ' selected' : ''}>${esc(label)}</option>`;
      const kinds = Object.keys(W.findingKind).filter((k) => k !== 'FINDING_KIND_UNSPECIFIED');
      const rows = findings.map((f) => `<tr data-finding="${esc(f.id)}"><td>${sevBadge(f.severity)}</td><td>${esc(W.findingKind[f.kind] || f.kind)}</td>
<td><a href="${clusterURL(f.cluster)}">${esc(f.cluster)}</a></td><td>${f.node ? `<a href="${nodeURL(f.cluster, f.node)}">${esc(f.node)}</a>` : '—'}</td><td>${esc(f.summary)}</td></tr>`).join('');
      const results = `<p class="muted">${findings.length} findings${findings.length >= 5000 ? ' (the first 5,000)' : ''}.</p>
<table id="findings"><thead><tr><th scope="col">Severity</th><th scope="col">Kind</th><th scope="col">Cluster</th><th scope="col">Node</th><th scope="col">Summary</th></tr></thead>
<tbody>${rows || '<tr><td colspan="5">No findings.</td></tr>'}</tbody></table>`;
      const box = main.querySelector('#results');
      if (box) { // the form stays as the user left it
        show(results, box);
        ready('findings');
        return;
      }
      show(`<h1>Findings</h1>
<form class="filters" id="filters" role="search">
<label>Cluster<select name="cluster">${opt('', 'all', cluster)}${clusters.map((c) => opt(c.name, c.name, cluster)).join('')}</select></label>
<label>At least<select name="severity">${opt('', 'any severity', severity)}${SEVERITIES.map((s) => opt(s, W.severity[s], severity)).join('')}</select></label>
<label>Kind<select name="kind">${opt('', 'any kind', kind)}${kinds.map((k) => opt(k, W.findingKind[k], kind)).join('')}</select></label>
<label>CEL filter<input class="cel" name="filter" value="${esc(filter)}" placeholder='finding.node.startsWith("zzk") &amp;&amp; finding.severity == "SEVERITY_WARNING"'></label>
<button type="submit">Apply</button></form>
<div id="results">${results}</div>`);
      shown.set(main.querySelector('#results'), results);
      main.querySelector('#filters').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const q = new URLSearchParams();
        for (const [k, v] of new FormData(ev.target)) if (v) q.set(k, v);
        navigate('/ui/findings' + (q.toString() ? '?' + q : ''));
      });
      ready('findings');
    } catch (err) { if (!ctl.signal.aborted) showError(err); }
  };
  const later = debounce(load, 500);
  let synced = false;
  const w = new Watcher({ cluster, skipComponents: true, maxBatch: 500 }, (type, e) => {
    if (type === 'ERROR') { showError(e); return; }
    if (type === 'WATCH_EVENT_TYPE_SYNCED') { synced = true; return; }
    if (synced && e.finding) later();
  }, setLive);
  load().then(() => w.start());
  return { stop() { ctl.abort(); w.stop(); later.cancel(); } };
}

// ---- routing -------------------------------------------------------------------

function route() {
  if (current) current.stop();
  current = null;
  delete document.body.dataset.ready;
  delete document.body.dataset.updated;
  delete document.body.dataset.error;
  setLive('');
  const url = new URL(location.href);
  const parts = url.pathname.replace(/^\/ui\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  let nav = '';
  show('<p>Loading…</p>');
  if (parts.length === 0) { nav = 'fleet'; current = fleetView(); document.title = 'Fleet · kubeatlas'; }
  else if (parts[0] === 'map' && parts.length === 1) { nav = 'map'; current = mapView(''); document.title = 'Map · kubeatlas'; }
  else if (parts[0] === 'findings' && parts.length === 1) { nav = 'findings'; current = findingsView(url.searchParams); document.title = 'Findings · kubeatlas'; }
  else if (parts[0] === 'clusters' && parts.length === 2) { current = mapView(parts[1]); document.title = parts[1] + ' · kubeatlas'; }
  else if (parts[0] === 'clusters' && parts[2] === 'nodes' && parts.length === 4) { current = nodeView(parts[1], parts[3], url.searchParams); document.title = parts[3] + ' · ' + parts[1] + ' · kubeatlas'; }
  else if (parts[0] === 'clusters' && parts[2] === 'nodes' && parts[4] === 'components' && parts.length === 6) {
    current = instanceView(parts[1], parts[3], parts[5]); document.title = parts[5] + ' on ' + parts[3] + ' · kubeatlas';
  } else {
    show(`<h1>Not found</h1><p>Nothing is shown at ${esc(url.pathname)}. <a href="/ui/">The fleet</a></p>`);
    ready('notfound');
  }
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

function navigate(href) {
  history.pushState(null, '', href);
  route();
  main.focus({ preventScroll: true });
}

// Links inside the page change the view without reloading it.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui/') || url.pathname.startsWith('/ui/static/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);
// A page left for another stops its streams: a browser may keep it in its
// back-forward cache, and its open Watch streams would hold the few
// connections a browser allows per server. Shown again, it starts afresh.
window.addEventListener('pagehide', () => {
  if (current) current.stop();
  current = null;
});
window.addEventListener('pageshow', (e) => { if (e.persisted) route(); });

(async () => {
  try {
    const resp = await fetch('/ui/static/words.json');
    W = await resp.json();
  } catch (err) {
    main.innerHTML = `<div class="alert" role="alert">The page could not load its words: ${esc(err.message)}</div>`;
    return;
  }
  route();
})();
