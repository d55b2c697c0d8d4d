// Servicetrail Process page: the chain of a repair drawn as a flow, with the waiting time of each hand-off,
// the bottleneck marked, the findings and the requests behind them. Vanilla JS and inline SVG, works offline.
// Views read: /v1/views/handoffs, /v1/views/rework, /v1/views/variants, /v1/views/process-findings,
// /v1/views/paid-service, /v1/views/part-waits.
"use strict";

// The DOM helpers, the filter form and `api` are common.js's (loaded first).
const STEPS = ["triage", "assign", "accept", "travel", "repair", "follow_up"];
const STEP_NAMES = { triage: "Triage", assign: "Assign", accept: "Accept", travel: "Travel", repair: "Repair",
                     follow_up: "Follow-up", quoting: "Quoting", customer_decision: "Customer decides",
                     parts_wait: "Waiting for parts" };
// Paid service's and the parts' waits, each drawn under the contract step it lies inside.
const WAITS = { quoting: "assign", customer_decision: "assign", parts_wait: "repair" };
const WAIT_NAMES = { quoting: "Quoting", customer_decision: "Customer", parts_wait: "Parts" };  // fit a half box
const CHAIN = ["triage", "quoting", "customer_decision", "assign", "accept", "travel", "parts_wait", "repair",
               "follow_up"];

// --- filters ------------------------------------------------------------------------------------------
const state = { params: new URLSearchParams(location.hash.slice(1)), handoffs: [], rework: [], variants: [],
                findings: [], paid: [], partWaits: [] };
function initFilters() {
  initFilterForm(state.params, load);
  $("group_by").addEventListener("change", () => { state.params.delete("key"); load(); });
  $("key").addEventListener("change", () => draw());
}
// Where a request id links to: intake's API (same host, port 8001, unless the URL says `#intake=<base>`).
function requestLink(id) {
  const base = state.params.get("intake") || `${location.protocol}//${location.hostname}:8001`;
  return el("a", { href: `${base}/v1/service-requests/${encodeURIComponent(id)}`, class: "request",
                   "data-request-id": id, target: "_blank", rel: "noopener" }, id);
}

// --- the flow -----------------------------------------------------------------------------------------
// The bottleneck: the step where the key's requests spent the most time in all (largest share).
function bottleneckOf(rows) {
  return rows.reduce((best, r) => (best === null || (r.total_minutes || 0) > (best.total_minutes || 0) ? r : best),
                     null);
}
function flowChart(key) {
  const box = $("flow-chart");
  const rows = state.handoffs.filter((r) => r.key === key);
  if (!rows.length) return empty(box, "No request of this cohort has a measured hand-off yet.");
  const byStep = Object.fromEntries(rows.map((r) => [r.step, r]));
  const bottleneck = bottleneckOf(rows.filter((r) => STEPS.includes(r.step)));  // shares are of the six
  const waits = Object.keys(WAITS).filter((w) => byStep[w]);
  const W = 1000, H = waits.length ? 330 : 215, gap = 34, boxW = (W - 20 - gap * (STEPS.length - 1)) / STEPS.length, top = 40, boxH = 130;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", id: "flow-svg",
                             "aria-label": `Hand-offs of ${key}: median and p90 waiting time per step` });
  svg.append(svgEl("defs", {}, svgEl("marker", { id: "arrowhead", markerWidth: 8, markerHeight: 8, refX: 6, refY: 4,
                                                  orient: "auto" }, svgEl("path", { d: "M0,0 L8,4 L0,8 z",
                                                                                    class: "muted" }))));
  STEPS.forEach((step, i) => {
    const x = 10 + i * (boxW + gap);
    const row = byStep[step];
    const isBottleneck = row && bottleneck && row.step === bottleneck.step;
    const g = svgEl("g", { class: "step", "data-step": step, "data-key": key,
                           "data-median": row ? row.median_minutes : "", "data-p90": row ? row.p90_minutes : "",
                           "data-count": row ? row.count : 0, "data-share": row ? row.share_pct : "",
                           "data-bottleneck": isBottleneck ? "true" : "false" });
    g.append(svgEl("rect", { x, y: top, width: boxW, height: boxH, rx: 8,
                             class: isBottleneck ? "step-box bottleneck" : "step-box" }));
    g.append(svgEl("text", { x: x + 10, y: top + 22, class: "step-name" }, STEP_NAMES[step]));
    g.append(svgEl("text", { x: x + 10, y: top + 38, class: "step-owner" }, row ? row.owner : ""));
    if (row) {
      g.append(svgEl("text", { x: x + 10, y: top + 62, class: "step-value median" },
                     `median ${fmtMinutes(row.median_minutes)}`));
      g.append(svgEl("text", { x: x + 10, y: top + 80, class: "step-value p90" }, `p90 ${fmtMinutes(row.p90_minutes)}`));
      g.append(svgEl("text", { x: x + 10, y: top + 98, class: "step-owner" },
                     `${row.count} request${row.count === 1 ? "" : "s"}`));
      const share = Math.max(0, Math.min(100, row.share_pct || 0));
      g.append(svgEl("rect", { x: x + 10, y: top + 108, width: boxW - 20, height: 10, class: "axis", fill: "none" }));
      g.append(svgEl("rect", { x: x + 10, y: top + 108, width: ((boxW - 20) * share) / 100, height: 10,
                               class: isBottleneck ? "share bottleneck" : "share" },
                     svgEl("title", {}, `${share}% of the time`)));
      if (row.customer_minutes) {
        const part = row.total_minutes ? row.customer_minutes / row.total_minutes : 0;
        g.append(svgEl("rect", { x: x + 10, y: top + 120, width: (boxW - 20) * part, height: 6, class: "customer" },
                       svgEl("title", {}, `waiting on the customer: ${fmtMinutes(row.customer_minutes)}`)));
      }
      if (isBottleneck) {
        // Centred over its box, but kept inside the drawing at both ends of the chain.
        const edge = i === 0 ? ["start", x] : i === STEPS.length - 1 ? ["end", x + boxW] : ["middle", x + boxW / 2];
        g.append(svgEl("text", { x: edge[1], y: top - 12, "text-anchor": edge[0], class: "bottleneck-label" },
                       `bottleneck · ${share}% of the time`));
      }
    } else {
      g.append(svgEl("text", { x: x + 10, y: top + 62, class: "step-owner" }, "not measured"));
    }
    svg.append(g);
    const inside = waits.filter((w) => WAITS[w] === step);
    inside.forEach((w, j) => {
      const r = byStep[w], width = boxW / inside.length, wx = x + j * width, wy = top + boxH + 30;
      const wg = svgEl("g", { class: "wait", "data-step": w, "data-key": key, "data-owner": r.owner,
                              "data-median": r.median_minutes, "data-p90": r.p90_minutes, "data-count": r.count,
                              "data-share": r.share_pct ?? "" });
      wg.append(svgEl("line", { x1: wx + width / 2, y1: top + boxH, x2: wx + width / 2, y2: wy, class: "wait-link" }));
      wg.append(svgEl("rect", { x: wx + 1, y: wy, width: width - 2, height: 84, rx: 6, class: "wait-box" },
                      svgEl("title", {}, `${STEP_NAMES[w]}: ${r.count} request(s), ${r.share_pct ?? "–"}% of the six steps' time`)));
      wg.append(svgEl("text", { x: wx + 6, y: wy + 16, class: "wait-name" }, WAIT_NAMES[w]));
      wg.append(svgEl("text", { x: wx + 6, y: wy + 31, class: "step-owner" }, r.owner));
      wg.append(svgEl("text", { x: wx + 6, y: wy + 50, class: "wait-value median" }, `med. ${fmtMinutes(r.median_minutes)}`));
      wg.append(svgEl("text", { x: wx + 6, y: wy + 67, class: "wait-value p90" }, `p90 ${fmtMinutes(r.p90_minutes)}`));
      svg.append(wg);
    });
    if (i < STEPS.length - 1) {
      const y = top + boxH / 2;
      svg.append(svgEl("line", { x1: x + boxW + 2, y1: y, x2: x + boxW + gap - 4, y2: y, class: "arrow",
                                 "marker-end": "url(#arrowhead)" }));
    }
  });
  svg.append(svgEl("text", { x: 10, y: H - 12, class: "muted" },
                   "Bar: the step's share of all waiting time; yellow: waiting on the customer (absent, site not ready)." +
                   (waits.length ? " Below: quoting, the customer's decision and parts, inside their step." : "")));
  box.replaceChildren(svg);
}

// --- matrix, rework, variants, findings ---------------------------------------------------------------
function matrix() {
  const keys = [...new Set(state.handoffs.map((r) => r.key))];
  const cell = Object.fromEntries(state.handoffs.map((r) => [`${r.key}|${r.step}`, r]));
  const measured = new Set(state.handoffs.map((r) => r.step));
  const columns = CHAIN.filter((s) => STEPS.includes(s) || measured.has(s));
  const slowest = Object.fromEntries(columns.map((s) => [s, Math.max(...keys.map((k) => cell[`${k}|${s}`]?.median_minutes ?? -1))]));
  const head = el("tr", {}, [el("th", {}, "key"), ...columns.map((s) => el("th", {}, STEP_NAMES[s]))]);
  const body = keys.map((k) => el("tr", { "data-key": k }, [el("td", {}, k), ...columns.map((s) => {
    const r = cell[`${k}|${s}`];
    const slow = r && keys.length > 1 && r.median_minutes === slowest[s] && r.median_minutes > 0;
    return el("td", { class: slow ? "slowest" : "", "data-step": s, title: r ? `p90 ${r.p90_minutes} min, n=${r.count}` : "" },
              r ? `${r.median_minutes}` : "–");
  })]));
  $("handoff-matrix").replaceChildren(head, ...body);
}
function reworkTable() {
  const columns = ["key", "jobs", "reassigned_pct", "repeat_visit_pct", "repeat_visits", "reasons", "reopened_complaints"];
  const head = el("tr", {}, columns.map((c) => el("th", {}, c.replaceAll("_", " "))));
  const body = state.rework.map((r) => el("tr", { "data-key": r.key }, columns.map((c) => el("td", {},
    c === "reasons" ? Object.entries(r.reasons).map(([k, v]) => `${k} ${v}`).join(", ") || "–" : r[c] ?? "–"))));
  $("rework-table").replaceChildren(head, ...body);
}
function plainTable(id, rows, columns, attrs) {
  const head = el("tr", {}, columns.map((c) => el("th", {}, c.replaceAll("_", " "))));
  const body = rows.map((r) => el("tr", { "data-table": id, ...attrs(r) }, columns.map((c) => el("td", { "data-column": c }, r[c] ?? "–"))));
  $(id).replaceChildren(head, ...body);
  if (!rows.length) $(id).append(el("tr", {}, el("td", { class: "muted", colspan: columns.length }, "None in this window.")));
}
function paidServiceTable() {
  plainTable("paid-service-table", state.paid, ["key", "currency", "quotes_issued", "accepted", "declined", "expired",
             "acceptance_rate_pct", "revenue"], (r) => ({ "data-key": r.key }));
}
function partWaitsTable() {
  plainTable("part-waits-table", state.partWaits, ["key", "part_number", "part_requests", "waiting", "received",
             "median_wait_minutes", "p90_wait_minutes", "total_wait_minutes"],
             (r) => ({ "data-key": r.key, "data-part": r.part_number ?? "" }));
}
function variantsList(key) {
  const rows = state.variants.filter((r) => r.key === key).slice(0, 8);
  $("variants").replaceChildren(...rows.map((r) => el("li", { "data-requests": r.requests }, [
    `${r.requests} request${r.requests === 1 ? "" : "s"} (${r.share_pct}%), median ${fmtMinutes(r.median_minutes)}: `,
    el("span", { class: "path" }, r.path.join(" → "))])));
}
function findingsList(key) {
  const items = state.findings.filter((f) => key === "all" || f.key === key);
  $("finding-count").textContent = `(${items.length})`;
  if (!items.length) {
    return $("findings").replaceChildren(el("li", { class: "none" }, "No finding: every hand-off within its target."));
  }
  $("findings").replaceChildren(...items.map((f) => {
    const more = f.requests > f.request_ids.length ? ` and ${f.requests - f.request_ids.length} more` : "";
    return el("li", { class: f.side === "customer" ? "customer" : "", "data-kind": f.kind, "data-key": f.key,
                      "data-step": f.step || "" }, [
      el("span", { class: "kind" }, f.kind.replaceAll("_", " ")), `${f.key}: ${f.detail}`,
      el("span", { class: "requests" }, [...f.request_ids.map(requestLink), more])]);
  }));
}

function draw() {
  const key = $("key").value;
  $("flow-key").textContent = key;
  document.querySelectorAll(".flow-key-copy").forEach((n) => { n.textContent = key; });
  flowChart(key);
  variantsList(key);
  findingsList(key);
}

async function load() {
  const group = $("group_by").value;
  await loadingPage(async () => {
    document.querySelectorAll(".group-label").forEach((n) => { n.textContent = group; });
    const [handoffs, rework, variants, findings, paid, partWaits] = await Promise.all([
      api("/v1/views/handoffs", { group_by: group }), api("/v1/views/rework", { group_by: group }),
      api("/v1/views/variants", { group_by: group }), api("/v1/views/process-findings", { group_by: group }),
      api("/v1/views/paid-service", { group_by: group }), api("/v1/views/part-waits", { group_by: group }),
    ]);
    Object.assign(state, { handoffs: handoffs.rows, rework: rework.rows, variants: variants.rows,
                           findings: findings.rows, paid: paid.rows, partWaits: partWaits.rows });
    const keys = [...new Set(handoffs.rows.map((r) => r.key))];
    const wanted = state.params.get("key");
    $("key").replaceChildren(...keys.map((k) => el("option", { value: k }, k)));
    if (wanted && keys.includes(wanted)) $("key").value = wanted;
    matrix();
    reworkTable();
    paidServiceTable();
    partWaitsTable();
    draw();
    return `Requests received ${$("from").value} to ${$("to").value}${asOfText()}`;
  }, "Could not load the process views");
}

initFilters();
load();
