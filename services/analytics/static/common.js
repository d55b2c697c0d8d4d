// Servicetrail analytics pages (the dashboard and the Process page load this first): the DOM and SVG helpers,
// the filter form read from the URL fragment, and the views' fetch with the bearer token. Vanilla JS, offline.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// --- small DOM helpers --------------------------------------------------------------------------------
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of [].concat(children)) node.append(child instanceof Node ? child : String(child));
  return node;
}
function svgEl(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of [].concat(children)) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
function fmtMinutes(m) {
  if (m === null || m === undefined) return "–";
  if (m < 90) return `${m} min`;
  if (m < 60 * 36) return `${(m / 60).toFixed(1)} h`;
  return `${(m / 1440).toFixed(1)} d`;
}
function empty(container, message) {
  container.replaceChildren(el("p", { class: "muted" }, message));
}

// --- filters, token and the views ---------------------------------------------------------------------
function isoDay(date) { return date.toISOString().slice(0, 10); }
// The filter form from the URL fragment (`#token=…&from=…`): the token else the one this tab kept, the last 30
// days to tomorrow, grouped by dealer, live; submitting it calls `load`.
function initFilterForm(params, load) {
  $("token").value = params.get("token") || sessionStorage.getItem("servicetrail-token") || "";
  const tomorrow = new Date(Date.now() + 86400000);
  $("to").value = params.get("to") || isoDay(tomorrow);
  $("from").value = params.get("from") || isoDay(new Date(tomorrow.getTime() - 30 * 86400000));
  $("group_by").value = params.get("group_by") || "dealer";
  $("as_of").value = params.get("as_of") || "";
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
}
function query(extra = {}) {
  const q = { from: $("from").value, to: $("to").value, ...extra };
  if ($("as_of").value) q.as_of = `${$("as_of").value}Z`;
  return new URLSearchParams(q).toString();
}
async function api(path, extra) {
  const token = $("token").value.trim();
  const response = await fetch(`${path}?${query(extra)}`, { headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}
// " as of <moment> UTC" or " (live)": what a status line says of the filter's `as_of`.
function asOfText() { return $("as_of").value ? ` as of ${$("as_of").value} UTC` : " (live)"; }
// Runs `work` (which fetches and draws, and returns the status line) with the page's state and status kept:
// body[data-state] loading → ready, or error with `failure` and the error's message; the token is kept for the tab.
async function loadingPage(work, failure) {
  document.body.dataset.state = "loading";
  $("status").className = "";
  $("status").textContent = "Loading…";
  sessionStorage.setItem("servicetrail-token", $("token").value.trim());
  try {
    $("status").textContent = await work();
    document.body.dataset.state = "ready";
  } catch (error) {
    $("status").className = "error";
    $("status").textContent = `${failure}: ${error.message}`;
    document.body.dataset.state = "error";
  }
}
