"use strict";
// Live plots drawn on <canvas> by hand: no chart library, no CDN (the page works offline).
const HISTORY = 90;  // samples kept (one a second)
const COLORS = ["#8ab4f8", "#9ccc65", "#ffb74d", "#f06292", "#4dd0e1", "#ba68c8", "#e0e0e0"];
const fpsHistory = [];
const stageHistory = {};

function drawPlot(canvas, series, unit) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 18;
  ctx.clearRect(0, 0, w, h);
  let top = 0;
  for (const s of series) for (const v of s.values) top = Math.max(top, v);
  top = top > 0 ? top * 1.15 : 1;
  ctx.strokeStyle = "#333"; ctx.fillStyle = "#888"; ctx.font = "10px sans-serif";
  for (const f of [0, 0.5, 1]) {
    const y = h - pad - f * (h - 2 * pad);
    ctx.beginPath(); ctx.moveTo(30, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText((top * f).toFixed(top < 10 ? 1 : 0), 2, y + 3);
  }
  ctx.fillText(unit, w - 30, 10);
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = 1.5; ctx.beginPath();
    const offset = HISTORY - s.values.length;  // the newest sample at the right edge
    s.values.forEach((v, i) => {
      const x = 30 + ((offset + i) / (HISTORY - 1)) * (w - 32);
      const y = h - pad - (v / top) * (h - 2 * pad);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function uvcText(uvc) {
  if (!uvc) return "not reported";
  if (uvc.enabled === false) return "off";
  if (uvc.problem) return "problem: " + uvc.problem;
  return (uvc.streaming ? "streaming" : "idle") + (uvc.udc_state ? " · " + uvc.udc_state : "");
}

function push(list, value) { list.push(value); if (list.length > HISTORY) list.shift(); }

function show(status) {
  const p = status.pipeline;
  document.getElementById("source").textContent = status.capture.source || "no source";
  document.getElementById("fps").textContent = p.fps.toFixed(1);
  document.getElementById("p99").textContent = p.latency.p99_ms.toFixed(1);
  document.getElementById("dropped").textContent = p.dropped;
  const healthy = document.getElementById("healthy");
  healthy.textContent = status.healthy ? "healthy" : "problem: " + status.problem;
  healthy.className = status.healthy ? "ok" : "error";
  const stages = document.getElementById("stages");
  stages.replaceChildren(...Object.entries(p.stages).map(([name, st]) =>
    row([name, st.p50_ms.toFixed(2), st.p99_ms.toFixed(2), st.dropped])));
  push(fpsHistory, p.fps);
  for (const [name, st] of Object.entries(p.stages)) push(stageHistory[name] ||= [], st.p50_ms);
  drawPlot(document.getElementById("plot-fps"), [{ values: fpsHistory, color: COLORS[0] }], "fps");
  const names = Object.keys(stageHistory);
  drawPlot(document.getElementById("plot-latency"),
    names.map((n, i) => ({ values: stageHistory[n], color: COLORS[i % COLORS.length] })), "ms");
  document.getElementById("legend").replaceChildren(...names.map((n, i) => {
    const tag = el("span", "■ " + n); tag.style.color = COLORS[i % COLORS.length]; return tag;
  }));
  const links = [
    ["MQTT", status.fleet.enabled ? (status.fleet.connected ? "connected" : "disconnected") : "off"],
    ["USB webcam (UVC)", uvcText(status.uvc)],
    ["restart needed for", status.restart_required.join(", ") || "nothing"],
  ];
  for (const t of status.temperatures) links.push([t.zone, t.celsius.toFixed(1) + " °C"]);
  if (!status.temperatures.length) links.push(["temperatures", "no sensor readable"]);
  document.getElementById("links").replaceChildren(...links.map(row));
}

async function refresh() {
  try { const r = await api("/api/status"); if (r.ok) show(r.body); }
  catch (e) { /* the daemon restarts: keep polling */ }
}

function setView(view) {
  document.getElementById("live").src = view === "before" ? "stream.mjpg?view=before" : "stream.mjpg";
  document.getElementById("view-after").setAttribute("aria-pressed", String(view === "after"));
  document.getElementById("view-before").setAttribute("aria-pressed", String(view === "before"));
}

document.getElementById("view-after").addEventListener("click", () => setView("after"));
document.getElementById("view-before").addEventListener("click", () => setView("before"));
document.getElementById("overlay").addEventListener("change", async (event) => {
  const r = await api("/api/config", { method: "PATCH", json: { web: { overlay: event.target.checked } } });
  if (!r.ok) { event.target.checked = !event.target.checked; alert(r.body.errors.join("\n")); }
});
refresh(); setInterval(refresh, 1000);
