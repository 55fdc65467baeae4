// dynobs' live view: polls /metrics (services: rate, errors and latency
// percentiles from the http.server.request.duration histograms) and
// /ui/api/traces (recent and slowest traces) every two seconds, and
// renders them without reloading. No library, nothing fetched from
// elsewhere.
"use strict";

const POLL_MS = 2000;
const HIST = "http_server_request_duration_seconds";
let previous = null;   // the last /metrics snapshot: {t, services}
let traces = {};       // trace id -> trace, from the last poll
let selectedTrace = null, selectedSpan = null;

function parseLabels(s) {
  const out = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(s)) !== null) out[m[1]] = m[2].replace(/\\(.)/g, "$1");
  return out;
}

// Per service: total requests, errors (error_type set), cumulative buckets by le.
function servicesOf(text) {
  const svcs = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith(HIST)) continue;
    const m = line.match(/^([a-z_]+)\{(.*)\}\s+(\S+)/);
    if (!m) continue;
    const name = m[1], labels = parseLabels(m[2]), value = parseFloat(m[3]);
    const svc = labels.service_name || "?";
    const s = svcs[svc] || (svcs[svc] = {count: 0, errors: 0, buckets: {}});
    if (name === HIST + "_count") {
      s.count += value;
      if (labels.error_type) s.errors += value;
    } else if (name === HIST + "_bucket") {
      s.buckets[labels.le] = (s.buckets[labels.le] || 0) + value;
    }
  }
  return svcs;
}

// Prometheus' histogram_quantile over cumulative buckets.
function quantile(q, buckets) {
  const les = Object.keys(buckets).map(le => [le === "+Inf" ? Infinity : parseFloat(le), buckets[le]])
    .sort((a, b) => a[0] - b[0]);
  if (!les.length) return NaN;
  const total = les[les.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of les) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * (count > prevCount ? (rank - prevCount) / (count - prevCount) : 0);
    }
    prevLe = le; prevCount = count;
  }
  return NaN;
}

function ms(v) {
  if (!isFinite(v)) return "–";
  return v < 1 ? v.toFixed(3) + " ms" : v < 1000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s";
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "onclick") e.onclick = v;
    else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
}

function renderServices(now) {
  const body = document.querySelector("#services tbody");
  const rows = [];
  for (const [svc, s] of Object.entries(now.services).sort()) {
    const p = previous && previous.services[svc];
    const dt = previous ? (now.t - previous.t) / 1000 : 0;
    const dcount = p ? s.count - p.count : 0;
    const derr = p ? s.errors - p.errors : 0;
    // percentiles over the last interval when it saw requests, else since start
    let b = s.buckets;
    if (p && dcount > 0) {
      b = {};
      for (const le of Object.keys(s.buckets)) b[le] = s.buckets[le] - (p.buckets[le] || 0);
    }
    const errRatio = p && dcount > 0 ? derr / dcount : (s.count ? s.errors / s.count : 0);
    rows.push(el("tr", {class: "service", "data-service": svc},
      el("td", {}, svc),
      el("td", {class: "num"}, dt > 0 ? (dcount / dt).toFixed(2) : "–"),
      el("td", {class: "num" + (errRatio > 0 ? " error" : "")}, (100 * errRatio).toFixed(1) + "%"),
      el("td", {class: "num"}, ms(1000 * quantile(0.5, b))),
      el("td", {class: "num"}, ms(1000 * quantile(0.95, b))),
      el("td", {class: "num"}, ms(1000 * quantile(0.99, b))),
      el("td", {class: "num"}, String(s.count))));
  }
  body.replaceChildren(...rows);
}

function rootOf(t) {
  const ids = new Set(t.spans.map(s => s.span_id));
  return t.spans.find(s => !s.parent_id || !ids.has(s.parent_id)) || t.spans[0];
}

function renderList(id, list) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...list.map(t => {
    const root = rootOf(t);
    const failed = t.spans.some(s => s.status === "error");
    const row = el("tr", {class: "trace" + (t.trace_id === selectedTrace ? " selected" : ""),
                          "data-trace-id": t.trace_id, onclick: () => select(t.trace_id)},
      el("td", {class: failed ? "error" : ""}, (root ? root.service + ": " + root.name : t.trace_id)),
      el("td", {class: "num"}, String(t.spans.length)),
      el("td", {class: "num"}, ms(t.duration_ms)),
      el("td", {}, new Date(t.start_unix_ms).toLocaleTimeString()));
    return row;
  }));
}

// Spans in tree order, each with its depth.
function ordered(t) {
  const kids = {}, ids = new Set(t.spans.map(s => s.span_id));
  for (const s of t.spans) {
    const p = s.parent_id && ids.has(s.parent_id) ? s.parent_id : "";
    (kids[p] = kids[p] || []).push(s);
  }
  for (const k of Object.values(kids)) k.sort((a, b) => a.start_ms - b.start_ms);
  const out = [];
  const walk = (p, d) => (kids[p] || []).forEach(s => { out.push([s, d]); walk(s.span_id, d + 1); });
  walk("", 0);
  return out;
}

function renderTrace() {
  const sec = document.getElementById("trace");
  const t = traces[selectedTrace];
  if (!t) { sec.hidden = true; return; }
  sec.hidden = false;
  document.getElementById("trace-title").textContent =
    "Trace " + t.trace_id + " — " + t.spans.length + " spans, " + ms(t.duration_ms);
  const total = Math.max(t.duration_ms, 0.001);
  const rows = ordered(t).map(([s, depth]) => {
    const bar = el("div", {class: "span-bar" + (s.status === "error" ? " error" : "")},
                   el("span", {class: "ms"}, ms(s.duration_ms)));
    bar.style.left = (100 * s.start_ms / total).toFixed(3) + "%";
    bar.style.width = (100 * s.duration_ms / total).toFixed(3) + "%";
    const label = el("div", {class: "span-label"}, el("span", {class: "svc"}, s.service + " "), s.kind + " " + s.name);
    label.style.paddingLeft = (0.4 + 1.2 * depth) + "em";
    return el("div", {class: "span-row" + (s.span_id === selectedSpan ? " selected" : ""),
                      "data-span-id": s.span_id, onclick: () => selectSpan(s.span_id)},
              label, el("div", {class: "span-track"}, bar));
  });
  document.getElementById("waterfall").replaceChildren(...rows);
  renderSpan();
}

function renderSpan() {
  const box = document.getElementById("span-details");
  const t = traces[selectedTrace];
  const s = t && t.spans.find(x => x.span_id === selectedSpan);
  if (!s) { box.hidden = true; return; }
  box.hidden = false;
  const attrRows = Object.entries(s.attributes).map(([k, v]) =>
    el("tr", {}, el("td", {class: "attr-key"}, k), el("td", {class: "attr-value"}, JSON.stringify(v))));
  const parts = [el("h3", {}, s.service + ": " + s.name + " (" + s.kind + ", " + ms(s.duration_ms) +
                    (s.status === "error" ? ", error" + (s.status_message ? ": " + s.status_message : "") : "") + ")"),
                 el("table", {id: "span-attributes"}, el("tbody", {}, ...attrRows))];
  if (s.events.length)
    parts.push(el("h3", {}, "Events"), el("table", {id: "span-events"}, el("tbody", {},
      ...s.events.map(e => el("tr", {}, el("td", {class: "num"}, ms(e.time_ms)), el("td", {}, e.name),
                                  el("td", {class: "attr-value"}, JSON.stringify(e.attributes)))))));
  const logs = t.logs.filter(l => l && l.span_id === s.span_id);
  if (logs.length)
    parts.push(el("h3", {}, "Logs"), el("table", {id: "span-logs"}, el("tbody", {},
      ...logs.map(l => el("tr", {}, el("td", {class: "num"}, ms(l.time_ms)), el("td", {}, l.severity),
                              el("td", {class: "attr-value"}, l.body))))));
  box.replaceChildren(...parts);
}

function select(id) {
  selectedTrace = id;
  selectedSpan = null;
  document.querySelectorAll("tr.trace").forEach(r => r.classList.toggle("selected", r.dataset.traceId === id));
  renderTrace();
}

function selectSpan(id) {
  selectedSpan = id;
  document.querySelectorAll(".span-row").forEach(r => r.classList.toggle("selected", r.dataset.spanId === id));
  renderSpan();
}

async function poll() {
  try {
    const [m, t] = await Promise.all([fetch("/metrics"), fetch("/ui/api/traces")]);
    const now = {t: Date.now(), services: servicesOf(await m.text())};
    renderServices(now);
    previous = now;
    const data = await t.json();
    traces = {};
    for (const tr of data.recent.concat(data.slowest)) traces[tr.trace_id] = tr;
    renderList("recent", data.recent);
    renderList("slowest", data.slowest);
    if (selectedTrace) renderTrace();
    document.getElementById("status").textContent = "live, updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("status").textContent = "cannot reach the exporter: " + e;
  }
}

poll();
setInterval(poll, POLL_MS);
