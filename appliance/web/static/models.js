"use strict";
async function load() {
  const r = await api("/api/models");
  if (!r.ok) return;
  const m = r.body;
  document.getElementById("models-dir").textContent = "running from " + (m.dir || "?") +
    (m.backend ? " on " + m.backend : "") +
    (m.updates_enabled ? "" : " · updates are off (ota.enabled)");
  document.getElementById("bundles").replaceChildren(...m.bundles.map(b => {
    const tr = row([b.name, b.version, b.runs, b.accuracy.join("\n") || "–"]);
    tr.children[1].className = "nowrap";
    tr.children[3].className = "figures";
    return tr;
  }));
  const slots = [];
  if (m.agent) {
    slots.push(["active slot", m.agent.active_slot || "–"],
      ["committed slot", m.agent.committed_slot || "–"],
      ["state", m.agent.state + (m.agent.error ? ": " + m.agent.error : "")]);
    for (const [slot, versions] of Object.entries(m.agent.slots || {}))
      slots.push(["slot " + slot, Object.entries(versions).map(([n, v]) => n + " " + v).join(", ") || "empty"]);
    if (m.agent.job) slots.push(["last job", m.agent.job.result + (m.agent.job.reason ? ": " + m.agent.job.reason : "")]);
  }
  document.getElementById("slots").replaceChildren(...slots.map(row));
}

// XMLHttpRequest, not fetch: fetch cannot report upload progress.
document.getElementById("upload").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = document.getElementById("bundle").files[0];
  if (!file) return;
  const bar = document.getElementById("progress"), out = document.getElementById("upload-result");
  const button = document.getElementById("upload-button");
  const data = new FormData(); data.append("bundle", file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/models");
  xhr.setRequestHeader("X-CSRF-Token", CSRF);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; };
  xhr.upload.onload = () => { out.textContent = "uploaded; checking and installing…"; out.className = "muted"; };
  xhr.onloadend = () => {
    button.disabled = false;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = { errors: ["HTTP " + xhr.status] }; }
    if (xhr.status === 200) {
      out.textContent = "installed: " + body.result; out.className = "ok";
    } else {
      out.textContent = "refused: " + (body.errors || ["HTTP " + xhr.status]).join("; "); out.className = "error";
    }
    out.dataset.done = xhr.status === 200 ? "ok" : "refused";
    load();
  };
  bar.hidden = false; bar.value = 0; button.disabled = true; out.textContent = "uploading…";
  delete out.dataset.done;
  xhr.send(data);
});
load();
