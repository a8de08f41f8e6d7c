// The dashboard: asks /render for the series a glob matches over a range,
// draws one chart per series on a canvas, and refreshes while the page is
// visible. Everything it needs ships with the server: no other origin.
"use strict";

const REFRESH_MS = { "15min": 5000, "1h": 10000, "6h": 30000, "24h": 60000, "7d": 300000, "30d": 600000 };
const MAX_CHARTS = 48;
const $ = (id) => document.getElementById(id);
let timer = null;
let generation = 0;

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { glob: params.get("glob") || "", range: params.get("range") || "15min" };
}

function writeHash(glob, range) {
  const hash = "#" + new URLSearchParams({ glob, range }).toString();
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function setStatus(text, error) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(error));
}

// A glob showing every key at the most common depth, when none is given.
function defaultGlob(keys) {
  const depths = new Map();
  for (const key of keys) {
    const depth = key.split(".").length;
    depths.set(depth, (depths.get(depth) || 0) + 1);
  }
  let best = 1, count = 0;
  for (const [depth, n] of depths) if (n > count) { best = depth; count = n; }
  return Array(best).fill("*").join(".");
}

async function loadKeys() {
  const response = await fetch("metrics/index.json");
  if (!response.ok) throw new Error(await response.text());
  const keys = await response.json();
  const list = $("keys");
  list.replaceChildren(...keys.slice(0, 500).map((key) => Object.assign(document.createElement("option"), { value: key })));
  return keys;
}

async function refresh() {
  const mine = ++generation;
  const glob = $("glob").value.trim();
  const range = $("range").value;
  writeHash(glob, range);
  if (!glob) { setStatus("Type a metric glob, such as host.*.cpu"); document.body.dataset.state = "ready"; return; }
  const width = Math.max(100, Math.min(2000, Math.round(($("charts").clientWidth || 800) * (window.devicePixelRatio || 1))));
  const query = new URLSearchParams({ target: glob, from: "-" + range, until: "now", format: "json", maxDataPoints: String(width) });
  try {
    const response = await fetch("render?" + query.toString());
    const body = await response.text();
    if (mine !== generation) return;
    if (!response.ok) throw new Error(body);
    draw(JSON.parse(body));
    setStatus(`Updated ${new Date().toLocaleTimeString()} · live every ${REFRESH_MS[range] / 1000} s`);
  } catch (error) {
    if (mine !== generation) return;
    setStatus("Could not load: " + error.message, true);
  }
  document.body.dataset.state = "ready";
}

function draw(series) {
  const main = $("charts");
  if (!series.length) {
    main.replaceChildren(Object.assign(document.createElement("p"), { className: "empty", textContent: "No series match." }));
    return;
  }
  const shown = series.slice(0, MAX_CHARTS);
  const existing = new Map([...main.querySelectorAll(".chart")].map((el) => [el.dataset.target, el]));
  const cards = shown.map((s) => {
    let card = existing.get(s.target);
    if (!card) {
      card = document.createElement("section");
      card.className = "chart";
      card.dataset.target = s.target;
      const title = document.createElement("h2");
      title.append(Object.assign(document.createElement("span"), { className: "last" }), s.target);
      card.append(title, document.createElement("canvas"));
    }
    return card;
  });
  // Attached before drawing: a canvas sizes itself from its laid-out width.
  main.replaceChildren(...cards);
  cards.forEach((card, i) => plot(card, shown[i].datapoints));
  if (series.length > shown.length) {
    main.append(Object.assign(document.createElement("p"), { className: "empty", textContent: `${series.length - shown.length} more series not shown: narrow the glob.` }));
  }
}

function formatValue(v) {
  if (v === null) return "–";
  const a = Math.abs(v);
  if (a >= 1e9 || (a > 0 && a < 1e-3)) return v.toExponential(2);
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return String(Math.round(v * 1000) / 1000);
}

function formatTime(ts, span) {
  const d = new Date(ts * 1000);
  if (span > 2 * 86400) return `${d.getMonth() + 1}/${d.getDate()} ${String(d.getHours()).padStart(2, "0")}h`;
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

// The smallest of 1, 2 and 5 times a power of ten that is at least `raw`.
function niceStep(raw) {
  if (!(raw > 0) || !isFinite(raw)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw * (1 - 1e-9)) return m * power;
  return 10 * power;
}

// The shortest round span of time, in seconds, at least `raw` long.
const TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
function timeStep(raw) {
  for (const s of TIME_STEPS) if (s >= raw) return s;
  return Math.ceil(raw / 604800) * 604800;
}

function plot(card, points) {
  const canvas = card.querySelector("canvas");
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || 400, cssHeight = canvas.clientHeight || 180;
  canvas.width = Math.round(cssWidth * ratio);
  canvas.height = Math.round(cssHeight * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  const values = points.filter((p) => p[0] !== null);
  const last = values.length ? values[values.length - 1][0] : null;
  card.querySelector(".last").textContent = formatValue(last);
  card.dataset.points = String(values.length);
  if (!points.length) return;
  const t0 = points[0][1], t1 = points[points.length - 1][1];
  let lo = Math.min(...values.map((p) => p[0])), hi = Math.max(...values.map((p) => p[0]));
  if (!values.length) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = { left: 46, right: 8, top: 6, bottom: 20 };
  const w = cssWidth - pad.left - pad.right, h = cssHeight - pad.top - pad.bottom;
  const x = (t) => pad.left + (t1 === t0 ? w / 2 : ((t - t0) / (t1 - t0)) * w);
  const y = (v) => pad.top + h - ((v - lo) / (hi - lo)) * h;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = color("--muted");
  ctx.strokeStyle = color("--grid");
  ctx.lineWidth = 1;
  // Grid lines at round values (1, 2 or 5 times a power of ten), about
  // one per 40 pixels, so a reader can take values off the chart.
  const step = niceStep((hi - lo) / Math.max(2, Math.floor(h / 40)));
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.left, yy); ctx.lineTo(pad.left + w, yy); ctx.stroke();
    ctx.fillText(formatValue(Math.abs(v) < step * 1e-9 ? 0 : v), pad.left - 6, yy);
  }
  // Time labels at round times (whole minutes, hours or days of the
  // viewer's clock), about one per 90 pixels.
  const every = timeStep((t1 - t0) / Math.max(2, Math.floor(w / 90)));
  const offset = new Date(t0 * 1000).getTimezoneOffset() * 60;
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (let t = Math.ceil((t0 - offset) / every) * every + offset; t <= t1; t += every) {
    const label = formatTime(t, t1 - t0), half = ctx.measureText(label).width / 2;
    // A label that would stick out of the canvas is left out.
    if (x(t) - half < 0 || x(t) + half > cssWidth) continue;
    ctx.fillText(label, x(t), pad.top + h + 5);
  }
  // The line breaks where there is no value, as Graphite draws it.
  ctx.strokeStyle = color("--line");
  ctx.lineWidth = 1.75;
  ctx.lineJoin = "round";
  ctx.beginPath();
  let open = false, drawn = 0;
  for (const [v, t] of points) {
    if (v === null) { open = false; continue; }
    if (open) ctx.lineTo(x(t), y(v)); else ctx.moveTo(x(t), y(v));
    open = true;
    drawn++;
  }
  ctx.stroke();
  if (drawn === 1) {
    const [v, t] = values[0];
    ctx.fillStyle = color("--line");
    ctx.beginPath(); ctx.arc(x(t), y(v), 3, 0, 2 * Math.PI); ctx.fill();
  }
  card.dataset.drawn = String(drawn);
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, REFRESH_MS[$("range").value] || 10000);
}

async function start() {
  const { glob, range } = readHash();
  $("range").value = REFRESH_MS[range] ? range : "15min";
  $("glob").value = glob;
  try {
    const keys = await loadKeys();
    if (!glob && keys.length) $("glob").value = defaultGlob(keys);
  } catch (error) {
    setStatus("Could not list metrics: " + error.message, true);
  }
  $("controls").addEventListener("submit", (event) => { event.preventDefault(); refresh(); schedule(); });
  $("range").addEventListener("change", () => { refresh(); schedule(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(refresh, 200); });
  await refresh();
  schedule();
}

start();
