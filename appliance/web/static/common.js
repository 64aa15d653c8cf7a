"use strict";
// Every state-changing request carries the session's CSRF token (see security.py).
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

async function api(path, options = {}) {
  const headers = Object.assign({ "X-CSRF-Token": CSRF }, options.headers || {});
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 401) { window.location = "/login"; throw new Error("logged out"); }
  const body = await response.json();
  return { ok: response.ok, status: response.status, body };
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;  // never innerHTML: log lines and names are data
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) tr.appendChild(el("td", String(cell)));
  return tr;
}
