// prodsearch page: search by photo, browse the catalogue, show the leaderboard.
// Everything from the server is inserted with textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const PAGE = 24;

let lastFile = null;
let catOffset = 0;
let catTotal = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.classList.remove("hidden");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), 6000);
}

// What a shopper reads for each error code; the API's own messages are for
// developers and name internals.
const FRIENDLY = {
  unsupported_image: "This file is not a photo we can read. Try a JPEG, PNG, WebP or HEIC photo.",
  corrupt_image: "This photo could not be read: it may be damaged or only partly uploaded. Try taking it again.",
  empty_image: "The photo arrived empty. Try again.",
  image_too_large: "This photo is too large to search. Try a smaller one.",
  body_too_large: "This photo is too large to search. Try a smaller one.",
  busy: "The server is busy right now. Try again in a moment.",
  timeout: "The server is busy right now. Try again in a moment.",
  body_timeout: "The upload took too long. Check the connection and try again.",
  internal: "Something went wrong on our side. Try again later.",
};

async function api(path, opts) {
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new Error("The server could not be reached. Check the connection and try again.");
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const code = body && body.error ? body.error.code : "";
    const msg = FRIENDLY[code] || (res.status >= 500 ? FRIENDLY.internal : "The request was refused (" + res.status + ").");
    const err = new Error(msg);
    err.code = code;
    throw err;
  }
  return body;
}

// productName is what a card is titled: the catalogue's product name, else
// the label.
function productName(item) {
  if (item.name) return item.name;
  return item.label ? "Label " + item.label : "—";
}

// ---- tabs ----
function showTab(name) {
  document.querySelectorAll(".tab").forEach((b) => {
    const on = b.dataset.tab === name;
    b.classList.toggle("active", on);
    b.setAttribute("aria-selected", on);
  });
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === "panel-" + name));
  if (name === "catalogue") loadCatalogue();
  if (name === "leaderboard") loadLeaderboard();
}

// ---- cards and viewer ----
function card(item, opts) {
  const c = el("article", "card");
  c.dataset.id = item.id;
  c.dataset.label = item.label || "";
  const thumb = el("div", "thumb");
  if (item.image_url) {
    const img = el("img");
    img.loading = "lazy";
    img.alt = productName(item);
    img.src = item.image_url;
    thumb.append(img);
  }
  if (opts.rank) thumb.append(el("span", "rank", "#" + opts.rank));
  const body = el("div", "body");
  // The ID's last part (a file name) tells photos apart; the whole ID is in
  // the tooltip and the viewer.
  const short = item.id.split("/").pop();
  const idEl = el("div", "id", item.name && item.label ? `label ${item.label} · ${short}` : short);
  idEl.title = item.id;
  const nameEl = el("div", "label", productName(item));
  nameEl.title = productName(item);
  body.append(nameEl, idEl);
  if (opts.score !== undefined) {
    const s = el("div", "score");
    const bar = el("div", "bar");
    const fill = el("span");
    fill.style.width = Math.max(0, Math.min(1, opts.score)) * 100 + "%";
    bar.append(fill);
    s.append(bar, el("span", "", opts.score.toFixed(3)));
    body.append(s);
  }
  c.append(thumb, body);
  c.addEventListener("click", () => openViewer(item, opts.score));
  return c;
}

async function openViewer(item, score) {
  const d = $("#viewer");
  $("#viewer-img").src = item.image_url || "";
  $("#viewer-img").alt = productName(item);
  const dl = $("#viewer-meta");
  dl.replaceChildren();
  const row = (k, v) => { if (v !== undefined && v !== "") dl.append(el("dt", "", k), el("dd", "", v)); };
  row("Product", item.name);
  row("ID", item.id);
  row("Label", item.label);
  if (score !== undefined) row("Score", score.toFixed(4));
  d.showModal();
  try {
    const full = await api("/v1/items/" + encodeURIComponent(item.id));
    row("File", full.file_name);
    row("Added", new Date(full.added).toLocaleString());
    if (full.metadata) row("Metadata", JSON.stringify(full.metadata));
  } catch (e) { /* the basics are shown already */ }
}

// ---- search ----
function setQuery(file) {
  if (!file) return;
  // Browsers other than Safari give HEIC and AVIF files no type.
  const photoExt = /\.(heic|heif|avif|tiff?)$/i.test(file.name);
  if (!file.type.startsWith("image/") && !photoExt) { toast("That is not a photo. Choose a JPEG, PNG, WebP or HEIC photo."); return; }
  lastFile = file;
  const prev = $("#query-preview");
  if (prev.dataset.url) URL.revokeObjectURL(prev.dataset.url);
  prev.dataset.url = URL.createObjectURL(file);
  prev.onerror = () => prev.classList.add("hidden"); // HEIC outside Safari: searched, not previewed
  prev.src = prev.dataset.url;
  prev.classList.remove("hidden");
  $("#drop-text").replaceChildren(el("strong", "", file.name), el("br"), "drop or tap for another photo");
  $("#again").disabled = false;
  search();
}

async function search() {
  if (!lastFile) return;
  const params = new URLSearchParams({ k: $("#k").value });
  const label = $("#label-filter").value.trim();
  if (label) params.set("label", label);
  if ($("#rerank").checked) params.set("rerank", "qe");
  const form = new FormData();
  form.append("image", lastFile);
  const results = $("#results");
  results.setAttribute("aria-busy", "true");
  $("#timing").textContent = "Searching…";
  try {
    const r = await api("/v1/search?" + params, { method: "POST", body: form });
    const t = r.timing_ms;
    $("#timing").textContent = `${r.results.length} results in ${t.total.toFixed(1)} ms — decode ${t.decode.toFixed(1)}, resize ${t.resize.toFixed(1)}, describe ${t.describe.toFixed(1)}, search ${t.search.toFixed(1)} ms`;
    results.replaceChildren(...r.results.map((h, i) => card(h, { rank: i + 1, score: h.score })));
    $("#results-empty").classList.toggle("hidden", r.results.length > 0);
    if (r.results.length === 0) $("#results-empty").textContent = "No matching references" + (label ? ` with label “${label}”.` : ".");
  } catch (e) {
    $("#timing").textContent = "";
    toast(e.message);
  } finally {
    results.removeAttribute("aria-busy");
  }
}

function setupDrop() {
  const drop = $("#drop");
  const input = $("#file");
  input.addEventListener("change", () => setQuery(input.files[0]));
  const camera = $("#camera");
  camera.addEventListener("change", () => setQuery(camera.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => setQuery(e.dataTransfer.files[0]));
  // Dropping elsewhere must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("#search-options").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  ["#k", "#rerank"].forEach((s) => $(s).addEventListener("change", search));
  $("#label-filter").addEventListener("change", search);
}

// ---- catalogue ----
async function loadCatalogue() {
  const params = new URLSearchParams({ offset: catOffset, limit: PAGE });
  const label = $("#cat-label").value.trim();
  if (label) params.set("label", label);
  try {
    const r = await api("/v1/items?" + params);
    catTotal = r.total;
    if (catOffset >= catTotal && catTotal > 0) { catOffset = Math.floor((catTotal - 1) / PAGE) * PAGE; return loadCatalogue(); }
    $("#catalogue").replaceChildren(...r.items.map((it) => card(it, {})));
    const pages = Math.max(1, Math.ceil(catTotal / PAGE));
    const page = Math.floor(catOffset / PAGE) + 1;
    $("#page-info").textContent = catTotal ? `${catOffset + 1}–${catOffset + r.items.length} of ${catTotal} · page ${page}/${pages}` : "0 items";
    $("#prev").disabled = catOffset === 0;
    $("#next").disabled = catOffset + PAGE >= catTotal;
    $("#catalogue-empty").classList.toggle("hidden", catTotal > 0);
  } catch (e) {
    toast("The catalogue could not be loaded. " + e.message);
  }
}

function setupCatalogue() {
  $("#prev").addEventListener("click", () => { catOffset = Math.max(0, catOffset - PAGE); loadCatalogue(); });
  $("#next").addEventListener("click", () => { catOffset += PAGE; loadCatalogue(); });
  $("#cat-label").addEventListener("change", () => { catOffset = 0; loadCatalogue(); });
}

// ---- leaderboard ----
async function loadLeaderboard() {
  try {
    const r = await api("/v1/leaderboard");
    $("#tab-leaderboard").classList.toggle("hidden", !r.available);
    const fmt = (x) => (typeof x === "number" ? x.toFixed(4) : "");
    const rows = r.rows.map((row, i) => {
      const tr = el("tr");
      const cells = [i + 1, row.run, row.checkpoint, row.dataset, fmt(row.map), fmt(row["map@1000"]), fmt(row.mrr), fmt(row["recall@1"]),
        row.time ? new Date(row.time).toLocaleString() : "", row.note || ""];
      cells.forEach((v, j) => tr.append(el("td", j >= 4 && j <= 7 ? "num" : "", String(v))));
      return tr;
    });
    $("#leaderboard tbody").replaceChildren(...rows);
  } catch (e) { /* optional */ }
}

// ---- header ----
async function loadStatus() {
  try {
    const h = await api("/healthz");
    $("#status").textContent = `${h.items.toLocaleString()} references · ${h.bundle}`;
    const l = await api("/v1/labels");
    $("#labels").replaceChildren(...l.labels.map((x) => { const o = el("option"); o.value = x.label; o.label = x.count + " items"; return o; }));
  } catch (e) {
    $("#status").textContent = "server unreachable";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  setupDrop();
  setupCatalogue();
  loadStatus();
  loadLeaderboard();
});
