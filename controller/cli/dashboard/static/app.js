// The Coalmine dashboard page: a list (#/) and a detail view (#/NAMESPACE/NAME), drawn from the JSON API and
// redrawn whenever the server's watch-fed event stream says something changed. Text goes in with textContent
// only (object names, messages and Events are not trusted HTML).
"use strict";

const TOKEN = document.querySelector('meta[name="coalmine-token"]').content;
const ACTIONS = [
  ["promote", "Promote"], ["promote-full", "Promote (full)"], ["abort", "Abort"],
  ["pause", "Pause"], ["resume", "Resume"], ["retry", "Retry"],
];
const state = { route: null, refresh: null, lastAction: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.substring(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  return { status: response.status, body };
}

function pct(v, digits) {
  return v === null || v === undefined ? "–" : `${(100 * v).toFixed(digits === undefined ? 2 : digits)}%`;
}
function num(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en") : v.toPrecision(3);
  return String(v);
}
function badge(text, cls) { return el("span", { class: `badge ${cls || text}`, text }); }

function table(headers, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

function section(title, ...content) {
  return el("section", { class: "card" }, el("h2", { text: title }), ...content);
}

function errorBox(message) { return el("p", { class: "error", role: "alert", text: message }); }

// -- list ---------------------------------------------------------------------------------------------------

async function showList() {
  const { status, body } = await getJson("/api/rollouts");
  const view = document.getElementById("view");
  if (status !== 200) { view.replaceChildren(errorBox(body.error || `HTTP ${status}`)); return; }
  if (body.items.length === 0) {
    view.replaceChildren(el("p", { class: "muted", id: "empty", text: "No Canaries or BlueGreens found." }));
    return;
  }
  const rows = body.items.map((r) => el("tr", { "data-name": r.name, "data-namespace": r.namespace, class: "link",
    onclick: () => { location.hash = `#/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`; } },
    el("td", { text: r.namespace }),
    el("td", {}, el("a", { href: `#/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`, text: r.name })),
    el("td", { text: r.kind }),
    el("td", { class: "phase" }, badge(r.phase), r.pausedByUser ? badge("Paused") : null),
    el("td", { class: "health" }, badge(r.health)),
    el("td", { class: "weight" }, weightBar(r.weight), ` ${r.weight}%`),
    el("td", { class: "step", text: r.stepText }),
    el("td", { text: `${r.failedChecks} / ${r.noDataChecks}` }),
    el("td", { class: "message", text: r.hold ? `${r.hold}: ${r.message}` : r.message }),
    el("td", { text: r.age })));
  view.replaceChildren(section("Rollouts",
    table(["Namespace", "Name", "Kind", "Phase", "Health", "Weight", "Step", "Failed / no data", "Message", "Age"],
      rows, { id: "rollouts" })));
}

function weightBar(weight) {
  const fill = el("span", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(100, weight))}%`; // CSSOM, which the page's CSP allows
  return el("span", { class: "bar", title: `${weight}% canary` }, fill);
}

// -- detail -------------------------------------------------------------------------------------------------

async function showDetail(namespace, name) {
  const { status, body } = await getJson(`/api/rollouts/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`);
  const view = document.getElementById("view");
  if (status !== 200) { view.replaceChildren(el("p", {}, el("a", { href: "#/", text: "← all rollouts" })),
    errorBox(body.error || `HTTP ${status}`)); return; }
  const d = body;
  const threshold = d.threshold !== null ? ` (rolls back at ${d.threshold})` : "";
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "Phase" }), el("dd", { id: "phase" }, badge(d.phase), d.pausedByUser ? badge("Paused") : null,
      d.health !== d.phase && !(d.pausedByUser && d.health === "Paused") ? badge(d.health) : null),
    el("dt", { text: "Message" }), el("dd", { id: "message", text: d.message || "–" }),
    el("dt", { text: "Holding" }), el("dd", { id: "hold", text: holdText(d) }),
    el("dt", { text: "Weight" }), el("dd", { id: "weight" },
      weightBar(d.weight), ` ${d.weight}% canary / ${100 - d.weight}% primary`),
    el("dt", { text: "Checks" }), el("dd", { text: `${d.failedChecks} failed${threshold}, ${d.noDataChecks} without data` }),
    el("dt", { text: "Last request" }), el("dd", { text: d.lastRequestId || "–" }));

  view.replaceChildren(
    el("p", {}, el("a", { href: "#/", text: "← all rollouts" })),
    el("h1", { id: "title" }, `${d.namespace}/${d.name} `, el("small", { text: `${d.kind} · age ${d.age}` })),
    actionBar(d),
    el("div", { class: "grid2" }, section("State", facts), section("Steps", stepsView(d))),
    section("Evidence over time (watched by this dashboard)", chartsView(d)),
    el("div", { class: "grid2" }, section("Arms (cumulative, this revision)", armsView(d)), section("Last look", lastLookView(d))),
    el("div", { class: "grid2" }, section("Images and revisions", workloadsView(d)), section("Conditions", conditionsView(d))),
    section("Judge state", judgeView(d)),
    section("Events", eventsView(d)));
}

function holdText(d) {
  const parts = [];
  if (d.hold) parts.push(d.hold + (d.pausedByUser ? " (paused by a user)" : ""));
  if (d.lastLook && d.lastLook.holdReason) parts.push(`not promotable yet: ${d.lastLook.holdReason}`);
  return parts.join(" — ") || "–";
}

function actionBar(d) {
  const result = el("div", { id: "action-result", role: "status", "aria-live": "polite" });
  if (state.lastAction && state.lastAction.key === `${d.namespace}/${d.name}`) {
    result.className = state.lastAction.cls;
    result.textContent = state.lastAction.text;
  }
  const buttons = ACTIONS.map(([action, label]) => {
    const refusal = d.actions[action];
    return el("button", { type: "button", "data-action": action, title: refusal || `kubectl coalmine ${verb(action)} ${d.name}`,
      class: refusal ? "off" : "on", onclick: () => act(d, action, label) }, label);
  });
  return el("div", { class: "actions card" }, el("div", { class: "buttons" }, buttons), result);
}

function verb(action) { return action === "promote-full" ? "promote --full" : action; }

async function act(d, action, label) {
  const refusal = d.actions[action];
  const key = `${d.namespace}/${d.name}`;
  const result = document.getElementById("action-result");
  if (refusal) { state.lastAction = { key, cls: "error", text: refusal }; result.className = "error"; result.textContent = refusal; return; }
  document.querySelectorAll(".actions button").forEach((b) => { b.disabled = true; });
  result.className = "pending";
  result.textContent = `${label}: request sent, waiting for the operator…`;
  let outcome;
  try {
    const response = await fetch(`/api/rollouts/${encodeURIComponent(d.namespace)}/${encodeURIComponent(d.name)}/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Coalmine-Token": TOKEN }, body: "{}" });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    outcome = describeOutcome(response.status, body, label);
  } catch (err) {
    outcome = { cls: "error", text: `${label} failed: ${err}` };
  }
  state.lastAction = { key, ...outcome };
  const now = document.getElementById("action-result");
  if (now) { now.className = outcome.cls; now.textContent = outcome.text; }
  document.querySelectorAll(".actions button").forEach((b) => { b.disabled = false; });
  scheduleRefresh();
}

function describeOutcome(status, body, label) {
  if (status !== 200) return { cls: "error", text: body.error || `HTTP ${status}` };
  const said = (body.said || []).join("; ");
  if (body.result === "handled") {
    const more = body.message ? ` — ${body.message}` : "";
    return { cls: "ok", text: `${said}. Handled: now ${body.phase}${more}` };
  }
  if (body.result === "ignored") return { cls: "error", text: `${said}. Ignored by the operator: ${body.message}` };
  return { cls: "pending", text: `${said}. No answer yet: ${body.message}` };
}

function stepsView(d) {
  if (d.specError) return el("p", { class: "error", text: `spec not readable (${d.specError}); showing status only` });
  if (!d.steps.length) return el("p", { class: "muted", text: "none (iterations only: A/B or blue/green)" });
  const done = d.steps.filter((s) => s.state !== "todo").length;
  return el("div", {},
    el("p", { id: "step-text", text: `Step ${done} of ${d.steps.length}` }),
    el("ol", { class: "steps", id: "steps" }, d.steps.map((s) => el("li", { class: s.state, text: s.text }))));
}

function chartsView(d) {
  const revision = (d.revisions && d.revisions.lastApplied) || "";
  const points = d.timeline.filter((p) => !revision || !p.revision || p.revision === revision);
  const { lineChart } = window.CoalmineCharts;
  // the judge keys its state by metric name (error-rate, latency…): pick each point's arm of the wanted kind
  const ofKind = (p, kind) => Object.values(p.arms).find((a) => a.kind === kind);
  const arm = (kind, side) => points.map((p) => [p.t, ofKind(p, kind) ? ofKind(p, kind)[side] : null]);
  const metricNames = [...new Set(points.flatMap((p) => Object.keys(p.metrics)))];
  const withP = metricNames.filter((m) => points.some((p) => p.metrics[m] && p.metrics[m].pValue !== null && p.metrics[m].pValue !== undefined));
  const cls = ["s1", "s2", "s3", "s4"];
  const span = points.length ? { t0: points[0].t, t1: points[points.length - 1].t } : {}; // one time axis for all
  return el("div", { class: "charts", id: "charts" },
    lineChart([{ name: "canary weight", cls: "s1", points: points.map((p) => [p.t, p.weight]) }],
      { ...span, title: "Canary weight (%)", yMin: 0, yMax: 100, step: true, format: (v) => `${Math.round(v)}%` }),
    lineChart([{ name: "canary", cls: "canary", points: arm("errorRate", "canaryRate") },
      { name: "primary", cls: "primary", points: arm("errorRate", "primaryRate") }],
    { ...span, title: "Error rate per arm", yMin: 0, flatSpan: 0.01, format: (v) => pct(v, 1) }),
    lineChart([{ name: "canary", cls: "canary", points: arm("latency", "canaryRate") },
      { name: "primary", cls: "primary", points: arm("latency", "primaryRate") }],
    { ...span, title: "Slow requests per arm (latency)", yMin: 0, flatSpan: 0.01, format: (v) => pct(v, 1) }),
    lineChart(withP.map((m, i) => ({ name: m, cls: cls[i % cls.length], points: points.map((p) => [p.t, p.metrics[m] ? p.metrics[m].pValue : null]) })),
      { ...span, title: "Judge: always-valid p-value", yMin: 0, yMax: 1, format: (v) => v.toFixed(2) }));
}

function armsView(d) {
  const names = Object.keys(d.arms);
  if (!names.length) return el("p", { class: "muted", text: "no comparison has counted requests yet" });
  return table(["Comparison", "Canary", "Primary", "Looks", "Always-valid p"], names.map((n) => {
    const a = d.arms[n];
    const what = a.kind === "latency" ? `slower than ${a.slowThresholdMs ?? "?"} ms` : "5xx";
    return el("tr", { "data-comparison": n, "data-kind": a.kind }, el("td", { text: `${n} (${what})` }),
      el("td", { class: "canary", text: `${pct(a.canaryRate)} (${num(a.canaryEvents)}/${num(a.canaryRequests)})` }),
      el("td", { class: "primary", text: `${pct(a.primaryRate)} (${num(a.primaryEvents)}/${num(a.primaryRequests)})` }),
      el("td", { text: num(a.looks) }), el("td", { text: num(a.pValue) }));
  }), { id: "arms" });
}

function lastLookView(d) {
  const look = d.lastLook;
  if (!look.outcome) return el("p", { class: "muted", text: "no analysis has run for this revision yet" });
  return el("div", {},
    el("p", {}, badge(look.outcome), ` ${look.reason || ""}`),
    look.detectable ? el("p", { class: "muted", text: `sensitivity: ${look.detectable}` }) : null,
    table(["Metric", "Outcome", "Ratio", "CI", "p", "Reason"], look.metrics.map((m) => el("tr", {},
      el("td", { text: m.metric }), el("td", {}, badge(m.outcome)), el("td", { text: num(m.estimate) }),
      el("td", { text: m.lower !== undefined || m.upper !== undefined ? `[${num(m.lower)}, ${num(m.upper)}]` : "–" }),
      el("td", { text: num(m.pValue) }), el("td", { class: "message", text: m.reason }))), { id: "evidence" }));
}

function workloadsView(d) {
  const rows = [];
  for (const [role, w] of Object.entries(d.workloads)) {
    const images = w.images.length ? w.images.map((i) => `${i.container}: ${i.image}`).join(", ") : w.note;
    rows.push(el("tr", { "data-role": role }, el("td", { text: role }), el("td", { text: w.name }),
      el("td", { class: "image", text: images }),
      el("td", { text: w.found ? `${w.templateHash} (rev ${w.revision || "–"}, ${w.readyReplicas}/${w.replicas ?? "–"} ready)` : "–" })));
  }
  const r = d.revisions;
  return el("div", {}, table(["Role", "Deployment", "Images", "Template / revision"], rows, { id: "workloads" }),
    el("dl", { class: "facts", id: "revisions" },
      el("dt", { text: "Analysing" }), el("dd", { text: r.lastApplied || "–" }),
      el("dt", { text: "Promoted" }), el("dd", { text: r.lastPromoted || "–" }),
      el("dt", { text: "Generation" }), el("dd", { text: `${num(r.generation)} (observed ${num(r.observedGeneration)})` })));
}

function conditionsView(d) {
  if (!d.conditions.length) return el("p", { class: "muted", text: "none" });
  return table(["Type", "Status", "Reason", "Message"], d.conditions.map((c) => el("tr", {},
    el("td", { text: c.type }), el("td", { text: c.status }), el("td", { text: c.reason }),
    el("td", { class: "message", text: c.message || "" }))), { id: "conditions" });
}

function judgeView(d) {
  const names = Object.keys(d.judge);
  if (!names.length) return el("p", { class: "muted", text: "empty" });
  return el("ul", { class: "judge" }, names.map((n) => el("li", {}, el("b", { text: n }), `: ${d.judge[n]}`)));
}

function eventsView(d) {
  if (!d.events.length) return el("p", { class: "muted", text: "no events" });
  return table(["Time", "Type", "Reason", "Message"], [...d.events].reverse().map((e) => el("tr", { class: e.type },
    el("td", { text: e.time ? e.time.replace("T", " ").replace("Z", "") : "–" }), el("td", { text: e.type }),
    el("td", { text: e.reason }), el("td", { class: "message", text: e.message + (e.count > 1 ? ` (x${e.count})` : "") }))),
  { id: "events" });
}

// -- routing and live updates ---------------------------------------------------------------------------------

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return parts.length === 2 ? { namespace: parts[0], name: parts[1] } : null;
}

async function render() {
  state.route = parseRoute();
  try {
    if (state.route) await showDetail(state.route.namespace, state.route.name);
    else await showList();
    document.body.dataset.rendered = String(Date.now());
  } catch (err) {
    document.getElementById("view").replaceChildren(errorBox(`cannot reach the dashboard server: ${err}`));
  }
}

function scheduleRefresh() {
  if (state.refresh) return;
  state.refresh = setTimeout(() => { state.refresh = null; render(); }, 150);
}

function concerns(change) {
  const r = state.route;
  return !r || (change.namespace === r.namespace && change.name === r.name);
}

function liveText(live) {
  const modes = Object.values(live || {});
  if (modes.some((m) => m.startsWith("polling"))) return "live (polling)";
  return "live";
}

function connectStream() {
  const badgeEl = document.getElementById("live");
  const source = new EventSource("/api/stream");
  source.addEventListener("hello", (e) => { badgeEl.textContent = liveText(JSON.parse(e.data).live); badgeEl.className = "live on"; });
  source.addEventListener("change", (e) => {
    const data = JSON.parse(e.data);
    badgeEl.textContent = liveText(data.live);
    badgeEl.title = Object.entries(data.live).map(([k, v]) => `${k}: ${v}`).join("\n");
    if (data.changes.some(concerns)) scheduleRefresh();
  });
  source.onerror = () => { badgeEl.textContent = "reconnecting…"; badgeEl.className = "live off"; };
}

async function start() {
  const { status, body } = await getJson("/api/session");
  if (status === 200) {
    const scope = body.allNamespaces ? "all namespaces" : `namespace ${body.namespace}`;
    document.getElementById("scope").textContent = body.user ? `${scope} · as ${body.user}` : scope;
  }
  window.addEventListener("hashchange", () => { state.lastAction = null; render(); });
  connectStream();
  render();
}

start();
