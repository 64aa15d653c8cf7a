"use strict";
let last = 0;
async function poll() {
  try {
    const r = await api("/api/logs?after=" + last);
    if (!r.ok) return;
    const log = document.getElementById("log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    for (const line of r.body.lines) {
      log.appendChild(el("div", `${line.time} ${line.level.toUpperCase()} ${line.logger}: ${line.message}`, line.level));
      last = line.seq;
    }
    while (log.childNodes.length > 1000) log.removeChild(log.firstChild);
    if (atBottom) log.scrollTop = log.scrollHeight;
  } catch (e) { /* restarting */ }
}
poll(); setInterval(poll, 2000);
