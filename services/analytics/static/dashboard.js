// Servicetrail dashboard: vanilla JS and inline SVG, no dependencies, so it works offline.
// It reads the analytics views with the bearer token from the URL fragment (#token=...) or the token field.
"use strict";

// The DOM helpers, the filter form and `api` are common.js's (loaded first).
function svgRoot(width, height, label) {
  return svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
}
const fmt = (v, suffix = "") => (v === null || v === undefined ? "–" : `${v}${suffix}`);

// --- charts -------------------------------------------------------------------------------------------
// An axis from 0 to a round maximum in at most 5 steps of 1, 2 or 5 × 10^k.
function niceScale(value) {
  const rough = Math.max(value, 1) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
  return { max: Math.ceil(Math.max(value, 1) / step) * step, step };
}

function trendChart(rows) {
  const box = $("trend-chart");
  if (!rows.length) return empty(box, "No days in the window.");
  const W = 960, H = 280, left = 44, right = 12, top = 24, bottom = 34;
  const { max, step } = niceScale(Math.max(...rows.flatMap((r) => [r.received, r.resolved, r.backlog])));
  const band = (W - left - right) / rows.length;
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const svg = svgRoot(W, H, "Requests received, resolved and backlog per day");
  svg.id = "trend-svg";
  for (let v = 0; v <= max; v += step) {
    svg.append(svgEl("line", { class: "axis", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
               svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "muted" }, v));
  }
  const every = Math.ceil(rows.length / 15);
  const points = [];
  rows.forEach((r, i) => {
    const x = left + i * band, w = Math.max(1, band / 2 - 2);
    svg.append(
      svgEl("rect", { class: "bar received", x: x + 1, y: y(r.received), width: w, height: y(0) - y(r.received),
                      fill: "var(--received)", "data-day": r.day, "data-value": r.received },
            [svgEl("title", {}, `${r.day}: ${r.received} received`)]),
      svgEl("rect", { class: "bar resolved", x: x + 1 + w, y: y(r.resolved), width: w,
                      height: y(0) - y(r.resolved), fill: "var(--resolved)", "data-day": r.day,
                      "data-value": r.resolved }, [svgEl("title", {}, `${r.day}: ${r.resolved} resolved`)]));
    points.push(`${x + band / 2},${y(r.backlog)}`);
    if (i % every === 0) {
      svg.append(svgEl("text", { x: x + band / 2, y: H - bottom + 16, "text-anchor": "middle", class: "muted" },
                       r.day.slice(5)));
    }
  });
  svg.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: "var(--backlog)",
                                 "stroke-width": 2, class: "backlog-line" }));
  rows.forEach((r, i) => svg.append(svgEl("circle", { cx: left + i * band + band / 2, cy: y(r.backlog), r: 2.5,
    fill: "var(--backlog)", class: "backlog", "data-day": r.day, "data-value": r.backlog },
    [svgEl("title", {}, `${r.day}: backlog ${r.backlog} at the end of the day`)])));
  const legend = el("div", { class: "legend" }, [
    el("span", {}, [el("i", { style: "background:var(--received)" }), "received"]),
    el("span", {}, [el("i", { style: "background:var(--resolved)" }), "resolved"]),
    el("span", {}, [el("i", { style: "background:var(--backlog)" }), "backlog at day's end"]),
  ]);
  box.replaceChildren(legend, svg);
}

function durationCharts(steps) {
  const box = $("durations-chart");
  box.replaceChildren();
  for (const [step, data] of Object.entries(steps)) {
    const W = 320, H = 190, left = 6, top = 48, bottom = 40;
    const max = Math.max(1, ...data.buckets.map((b) => b.count));
    const band = (W - left - 6) / data.buckets.length;
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    const svg = svgRoot(W, H, `Time to ${step}`);
    svg.id = `duration-${step}`;
    svg.append(svgEl("text", { x: 0, y: 14, "font-weight": 600 }, `to ${step}: ${data.count} requests`),
               svgEl("text", { x: 0, y: 30, class: "muted" },
                     `median ${fmtMinutes(data.median_minutes)} · p90 ${fmtMinutes(data.p90_minutes)}`),
               svgEl("line", { class: "axis", x1: left, x2: W - 6, y1: y(0), y2: y(0) }));
    data.buckets.forEach((b, i) => {
      const x = left + i * band;
      svg.append(svgEl("rect", { x: x + 2, y: y(b.count), width: band - 4, height: y(0) - y(b.count),
                                 fill: "var(--bar)", "data-bucket": b.label, "data-value": b.count },
                               [svgEl("title", {}, `${b.label}: ${b.count}`)]),
                 svgEl("text", { x: x + band / 2, y: H - bottom + 14 + (i % 2) * 12, "text-anchor": "middle",
                                 class: "muted", "font-size": 10 }, b.label));
      if (b.count) {
        svg.append(svgEl("text", { x: x + band / 2, y: Math.max(top - 4, y(b.count) - 3), "text-anchor": "middle",
                                   "font-size": 10 }, b.count));
      }
    });
    box.append(svg);
  }
}

function satisfactionChart(rows) {
  const box = $("satisfaction-chart");
  if (!rows.length) return empty(box, "No revisits in the window.");
  // Columns: dealer | CSAT bar (0-100) and value | NPS bar around its zero line (-100…100) and value.
  const rowH = 26, label = 130, csatW = 150, npsZero = 430, npsHalf = 90, top = 22;
  const W = npsZero + npsHalf + 120, H = top + rows.length * rowH + 8;
  const svg = svgRoot(W, H, "CSAT and NPS by dealer");
  svg.id = "satisfaction-svg";
  svg.append(svgEl("text", { x: label, y: 14, class: "muted" }, "CSAT %"),
             svgEl("text", { x: npsZero - npsHalf, y: 14, class: "muted" }, "NPS (−100 … 100)"),
             svgEl("line", { class: "axis", x1: npsZero, x2: npsZero, y1: top - 4, y2: H - 4 }));
  rows.forEach((r, i) => {
    const y0 = top + i * rowH, csat = r.csat_pct ?? 0;
    const g = svgEl("g", { class: "dealer-row", "data-key": r.key });
    g.append(svgEl("text", { x: 0, y: y0 + 15, class: "key-label" }, r.key),
             svgEl("rect", { x: label, y: y0 + 4, width: (csatW * csat) / 100, height: rowH - 10, fill: "var(--good)",
                             class: "csat", "data-key": r.key, "data-value": r.csat_pct ?? "" },
                   [svgEl("title", {}, `${r.key}: CSAT ${fmt(r.csat_pct, "%")}`)]),
             svgEl("text", { x: label + csatW + 6, y: y0 + 15 }, fmt(r.csat_pct, "%")));
    if (r.nps !== null) {
      const w = (Math.abs(r.nps) / 100) * npsHalf;
      g.append(svgEl("rect", { x: r.nps >= 0 ? npsZero : npsZero - w, y: y0 + 4, width: w, height: rowH - 10,
                               fill: r.nps >= 0 ? "var(--received)" : "var(--bad)", class: "nps", "data-key": r.key,
                               "data-value": r.nps }, [svgEl("title", {}, `${r.key}: NPS ${r.nps}`)]));
    }
    g.append(svgEl("text", { x: npsZero + npsHalf + 8, y: y0 + 15, class: "muted" },
                   `NPS ${fmt(r.nps)} · ${r.responses} resp.`));
    svg.append(g);
  });
  box.replaceChildren(svg);
}

function scoreChart(rows) {
  const box = $("scorecard-chart");
  if (!rows.length) return empty(box, "Nothing scored in the window.");
  const shown = rows.slice(0, 40), rowH = 22, W = 960, label = 160, top = 4;
  const svg = svgRoot(W, top + shown.length * rowH + 4, "Score by group");
  svg.id = "scorecard-svg";
  shown.forEach((r, i) => {
    const y0 = top + i * rowH, w = ((W - label - 60) * (r.score ?? 0)) / 100;
    svg.append(svgEl("g", { class: "score-row", "data-key": r.key }, [
      svgEl("text", { x: 0, y: y0 + 14, class: "key-label" }, r.key),
      svgEl("rect", { x: label, y: y0 + 3, width: Math.max(0, w), height: rowH - 7,
                      fill: (r.score ?? 0) >= 80 ? "var(--good)" : "var(--bar)" }),
      svgEl("text", { x: label + Math.max(0, w) + 4, y: y0 + 14 }, `score ${fmt(r.score)}`),
    ]));
  });
  box.replaceChildren(svg);
}

function table(id, columns, rows) {
  const head = el("tr", {}, columns.map(([, title]) => el("th", {}, title)));
  const body = rows.map((r) => el("tr", { "data-key": r.key }, columns.map(([name, , show]) =>
    el("td", {}, (show || fmt)(r[name])))));
  $(id).replaceChildren(el("thead", {}, head), el("tbody", {}, body.length ? body : [
    el("tr", {}, el("td", { colspan: columns.length }, "No rows in the window."))]));
}

function kpis(all, sat) {
  const t = all[0] || {}, s = sat[0] || {};
  const tiles = [
    ["received", fmt(t.received ?? 0)], ["resolved", fmt(t.resolved ?? 0)], ["backlog at end", fmt(t.backlog ?? 0)],
    ["median to resolve", fmtMinutes(t.median_minutes_to_resolve)], ["first-time fix", fmt(t.first_time_fix_pct, "%")],
    ["SLA met", fmt(t.sla_met_pct, "%")], ["CSAT", fmt(s.csat_pct, "%")], ["NPS", fmt(s.nps)],
    ["complaints / request", fmt(t.complaint_rate_pct, "%")],
  ];
  $("kpis").replaceChildren(...tiles.map(([label, value]) => el("div", { class: "tile", "data-kpi": label },
    [el("div", { class: "value" }, value), el("div", { class: "label" }, label)])));
}

function alertsList(items) {
  const list = $("alerts");
  $("alert-count").textContent = items.length ? `(${items.length})` : "";
  if (!items.length) return list.replaceChildren(el("li", { class: "none" }, "No active alerts."));
  list.replaceChildren(...items.map((a) => el("li", { "data-kind": a.kind, "data-key": a.key },
    [el("strong", {}, `${a.scope} ${a.key}: ${a.kind.replaceAll("_", " ")}`), el("br"), a.detail,
     el("div", { class: "muted" }, `since ${a.raised_at}`)])));
}

const THROUGHPUT_COLUMNS = [
  ["key", "key", String], ["received", "received"], ["resolved", "resolved"], ["backlog", "backlog"],
  ["phone_resolved_pct", "phone %"], ["escalated_pct", "escalated %"],
  ["median_minutes_to_triage", "triage (med)", fmtMinutes], ["median_minutes_to_assign", "assign (med)", fmtMinutes],
  ["p90_minutes_to_assign", "assign (p90)", fmtMinutes], ["median_minutes_to_arrive", "arrive (med)", fmtMinutes],
  ["p90_minutes_to_arrive", "arrive (p90)", fmtMinutes], ["median_minutes_to_resolve", "resolve (med)", fmtMinutes],
  ["p90_minutes_to_resolve", "resolve (p90)", fmtMinutes], ["first_time_fix_pct", "FTF %"],
  ["sla_met_pct", "SLA met %"], ["complaint_rate_pct", "complaints %"],
];
const SCORECARD_COLUMNS = [
  ["key", "key", String], ["sla_met_pct", "SLA met %"], ["first_time_fix_pct", "first-time fix %"],
  ["csat_pct", "CSAT %"], ["score", "score"],
];

// --- load ---------------------------------------------------------------------------------------------
async function load() {
  const group = $("group_by").value;
  await loadingPage(async () => {
    document.querySelectorAll(".group-label").forEach((node) => { node.textContent = group.replace("_", " "); });
    const [byGroup, overall, satByDealer, satAll, scorecard, trend, durations, alerts] = await Promise.all([
      api("/v1/views/throughput", { group_by: group }), api("/v1/views/throughput", { group_by: "all" }),
      api("/v1/views/satisfaction", { group_by: "dealer" }), api("/v1/views/satisfaction", { group_by: "all" }),
      api("/v1/views/scorecard", { group_by: group }), api("/v1/views/trend"), api("/v1/views/durations"),
      api("/v1/views/alerts", { limit: 100 }),
    ]);
    kpis(overall.rows, satAll.rows);
    trendChart(trend.rows);
    durationCharts(durations.steps);
    satisfactionChart(satByDealer.rows);
    scoreChart(scorecard.rows);
    table("scorecard-table", SCORECARD_COLUMNS, scorecard.rows);
    table("throughput-table", THROUGHPUT_COLUMNS, byGroup.rows);
    alertsList(alerts.items);
    return `Window ${$("from").value} to ${$("to").value}${asOfText()}; updated ${new Date().toISOString()}`;
  }, "Could not load the views");
}

initFilterForm(new URLSearchParams(location.hash.slice(1)), load);
load();
