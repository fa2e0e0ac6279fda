// The page of `tagger serve`: sends the text to POST /annotate and shows the entities and tags.
// Everything the server returns is inserted as text (textContent), never as HTML.
"use strict";

const PALETTE = {PER: "#aa9cfc", ORG: "#7aecec", LOC: "#ff9561", GPE: "#feca74", MISC: "#c887fb",
                 DATE: "#bfe1d9", NORP: "#e4e7d2"};
const EXTRA = ["#fca5a5", "#a7f3d0", "#fde68a", "#bfdbfe", "#ddd6fe", "#fbcfe8", "#d9f99d", "#fed7aa"];

function colour(label) {
  if (PALETTE[label]) return PALETTE[label];
  let h = 0;
  for (const c of label) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return EXTRA[h % EXTRA.length];
}

const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function showLegend(types) {
  const legend = $("legend");
  legend.replaceChildren(...types.map((t) => {
    const chip = el("span", t);
    chip.style.setProperty("--ent", colour(t));
    return chip;
  }));
}

function showResult(text, result) {
  // Offsets count code points (Python's str), JavaScript strings UTF-16 units: slice an array of code points.
  const chars = Array.from(text);
  const slice = (a, b) => chars.slice(a, b).join("");
  const out = $("rendered");
  const parts = [];
  let at = 0;
  for (const e of result.entities) {
    if (e.start > at) parts.push(document.createTextNode(slice(at, e.start)));
    const mark = el("mark", slice(e.start, e.end), {
      class: "ent", "data-label": e.label, "data-score": String(e.score),
      title: `${e.label} ${(100 * e.score).toFixed(1)}%`, "data-tip": `${e.label} · p = ${e.score.toFixed(3)}`,
    });
    mark.style.setProperty("--ent", colour(e.label));
    mark.appendChild(el("span", e.label, {class: "ent-label"}));
    parts.push(mark);
    at = e.end;
  }
  if (at < chars.length) parts.push(document.createTextNode(slice(at, chars.length)));
  out.replaceChildren(...parts);
  const body = $("tokens").tBodies[0];
  body.replaceChildren(...result.tokens.map((tok, i) => {
    const row = el("tr");
    const off = result.offsets ? result.offsets[i] : null;
    row.append(el("td", String(i + 1)), el("td", tok), el("td", result.tags[i], {class: "tag"}),
               el("td", off ? `${off[0]}–${off[1]}` : ""));
    return row;
  }));
}

let pending = null;
let sent = 0;

async function annotate() {
  const text = $("text").value;
  const mine = ++sent;
  if (pending) pending.abort();
  pending = new AbortController();
  $("status").textContent = "tagging…";
  $("status").classList.remove("error");
  try {
    const t0 = performance.now();
    const r = await fetch("/annotate", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({text}), signal: pending.signal,
    });
    const data = await r.json();
    if (mine !== sent) return;
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    showResult(text, data.results[0]);
    const n = data.results[0].entities.length;
    $("status").textContent = `${data.results[0].tokens.length} tokens, ${n} entit${n === 1 ? "y" : "ies"} ` +
      `in ${Math.round(performance.now() - t0)} ms`;
    document.body.dataset.state = "done";
  } catch (err) {
    if (err.name === "AbortError") return;
    $("status").textContent = String(err.message || err);
    $("status").classList.add("error");
    document.body.dataset.state = "error";
  }
}

async function loadModel() {
  try {
    const r = await fetch("/model");
    const m = await r.json();
    const best = m.training && m.training.summary && m.training.summary.best_dev;
    $("model-info").textContent = `model ${m.name}: ${m.task} tagging (${m.scheme}), ${m.labels.length} tags` +
      (best ? `, dev score ${(100 * best).toFixed(2)}` : "") + ` · tagger ${m.version || "?"} · ${m.runtime}`;
    showLegend(m.entity_types || []);
  } catch (err) {
    $("model-info").textContent = "the model could not be described: " + err;
  }
}

function init() {
  let timer = null;
  $("form").addEventListener("submit", (ev) => { ev.preventDefault(); annotate(); });
  $("text").addEventListener("input", () => {
    if (!$("live").checked) return;
    clearTimeout(timer);
    timer = setTimeout(annotate, 300);
  });
  loadModel();
  const given = new URLSearchParams(location.search).get("text");
  if (given) {
    $("text").value = given;
    annotate();
  }
}

document.addEventListener("DOMContentLoaded", init);
