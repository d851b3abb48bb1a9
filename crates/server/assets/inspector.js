// The run inspector: lists runs, shows a run's timeline, waiting reason, children and
// chain verification, performs operator actions after confirmation, and follows the
// event feed (Server-Sent Events read with fetch, so the token travels in a header).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("ledgerflow-token") || "", cursor: null, selected: null, feed: null };

function headers(json) {
  const h = {};
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 6000);
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.body !== undefined) });
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    $("token-form").hidden = false;
    throw new Error("this server needs a token: enter it above");
  }
  if (!response.ok) throw new Error((body && body.message) || response.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function short(id) { return id.slice(0, 8); }

async function loadRuns(append) {
  const params = new URLSearchParams({ newest_first: "true", limit: "50" });
  const status = $("status-filter").value;
  if (status) params.set("status", status);
  const search = $("search").value.trim();
  if (search && !/^[0-9a-f-]{4,}$/i.test(search)) params.set("workflow_id", search);
  if (append && state.cursor) params.set("cursor", state.cursor);
  const page = await api("/api/runs?" + params);
  const body = $("runs").tBodies[0];
  if (!append) body.replaceChildren();
  const prefix = search && /^[0-9a-f-]{4,}$/i.test(search) ? search.toLowerCase() : null;
  for (const run of page.runs) {
    if (prefix && !run.run_id.startsWith(prefix)) continue;
    const row = el("tr", { "data-run": run.run_id, "data-status": run.status },
      el("td", {}, el("code", {}, short(run.run_id))),
      el("td", {}, run.workflow_id + " v" + run.version),
      el("td", { class: "status-" + run.status }, run.status + (run.paused ? " (paused)" : "")),
      el("td", {}, run.seq),
      el("td", {}, run.updated_at));
    if (run.run_id === state.selected) row.classList.add("selected");
    row.addEventListener("click", () => selectRun(run.run_id));
    body.append(row);
  }
  state.cursor = page.next_cursor;
  $("more").hidden = !page.next_cursor;
  const counts = await api("/api/runs/counts");
  $("counts").textContent = Object.entries(counts.counts).map(([s, n]) => s + " " + n).join(" · ") || "no runs";
}

function fact(list, name, value) {
  list.append(el("dt", {}, name), el("dd", {}, value === null || value === undefined ? "—" : value));
}

async function selectRun(id) {
  state.selected = id;
  for (const row of $("runs").tBodies[0].rows) row.classList.toggle("selected", row.dataset.run === id);
  const run = await api("/api/runs/" + id);
  $("run-pane").hidden = false;
  $("run-pane").dataset.run = id;
  $("run-pane").dataset.status = run.status;
  $("run-title").textContent = run.workflow_id + " v" + run.version + " — " + run.status + (run.paused ? " (paused)" : "");
  const facts = $("run-facts");
  facts.replaceChildren();
  fact(facts, "run", run.run_id);
  fact(facts, "node", run.node);
  fact(facts, "seq", run.seq);
  fact(facts, "head hash", run.head_hash);
  fact(facts, "created", run.created_at);
  fact(facts, "updated", run.updated_at);
  if (run.parent) fact(facts, "parent", run.parent.run_id);
  if (run.output !== null) fact(facts, "output", JSON.stringify(run.output));
  if (run.failure) fact(facts, "failure", run.failure.code + ": " + run.failure.message);
  if (run.cancel_reason) fact(facts, "cancelled", run.cancel_reason);
  fact(facts, "vars", JSON.stringify(run.vars));
  const waiting = run.status === "waiting" && run.waiting;
  $("waiting").hidden = !waiting;
  if (waiting) {
    const w = run.waiting;
    const parts = ["waits for " + w.reason];
    if (w.prompt) parts.push("“" + w.prompt + "”");
    if (w.choices && w.choices.length) parts.push("choices: " + w.choices.join(", "));
    if (w.wait_key) parts.push("key " + w.wait_key);
    if (w.until_ms) parts.push("until " + new Date(w.until_ms).toISOString());
    $("waiting-reason").textContent = parts.join(" · ");
    $("respond-form").hidden = !(w.reason === "user" || w.reason === "event");
  }
  const ended = ["completed", "failed", "cancelled"].includes(run.status);
  $("pause").disabled = ended || run.paused;
  $("unpause").disabled = ended || !run.paused;
  $("cancel").disabled = ended;
  await Promise.all([loadTimeline(id), loadChildren(id), loadVerify(id)]);
}

async function loadTimeline(id) {
  const list = $("timeline");
  list.replaceChildren();
  let from = 1;
  for (let pages = 0; from && pages < 20; pages++) {
    const page = await api("/api/runs/" + id + "/records?limit=500&from=" + from);
    for (const r of page.records) {
      list.append(el("li", { "data-kind": r.kind },
        el("strong", {}, r.seq + " " + r.kind), " ",
        el("span", { class: "muted" }, new Date(r.at_ms).toISOString() + (r.body && r.body.by ? " by " + r.body.by : "")),
        el("pre", {}, JSON.stringify(r.body, null, 2))));
    }
    from = page.next_from;
  }
}

async function loadChildren(id) {
  const list = $("children");
  list.replaceChildren();
  const page = await api("/api/runs/" + id + "/children?limit=100");
  for (const child of page.children) {
    const link = el("a", { href: "#" + child }, short(child));
    link.addEventListener("click", (e) => { e.preventDefault(); selectRun(child); });
    list.append(el("li", {}, link));
  }
  if (!page.children.length) list.append(el("li", { class: "muted" }, "none"));
}

async function loadVerify(id) {
  const v = await api("/api/runs/" + id + "/verify");
  const out = $("verify");
  out.className = v.ok ? "ok" : "bad";
  let text = v.ok ? "✓ chain verified: " + v.records + " records, replay equals state" : "✗ " + v.error;
  if (v.lineage) text += v.lineage.ok ? " · fork of " + short(v.lineage.from_run_id) + " at seq " + v.lineage.from_seq + " (lineage verified)" : " · lineage: " + v.lineage.error;
  out.textContent = text;
}

function confirmAction(text) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

async function act(label, path, body) {
  const id = state.selected;
  if (!id || !(await confirmAction(label + " run " + short(id) + "?"))) return;
  try {
    const result = await api("/api/runs/" + id + "/" + path, { method: "POST", body: JSON.stringify(body || {}) });
    await loadRuns(false);
    await selectRun(path === "fork" ? result.run_id : id);
  } catch (e) { showError(label + ": " + e.message); }
}

async function follow() {
  // Reads the SSE stream with fetch; reconnects from the last cursor after a drop.
  let last = "now";
  $("live").textContent = "● feed";
  for (;;) {
    try {
      const h = headers(false);
      if (last !== "now") h["Last-Event-ID"] = last;
      const response = await fetch("/api/feed/stream?cursor=now", { headers: h });
      if (!response.ok) throw new Error("feed: " + response.status);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(chunk);
          const id = /^id: (.*)$/m.exec(chunk);
          if (id) last = id[1];
          if (event && event[1] === "cursor") scheduleRefresh();
          if (event && event[1] === "record") {
            const data = /^data: (.*)$/m.exec(chunk);
            if (data && JSON.parse(data[1]).run_id === state.selected) scheduleRefresh(true);
          }
        }
      }
    } catch (e) {
      $("live").textContent = "○ feed";
    }
    await new Promise((r) => setTimeout(r, 2000));
    $("live").textContent = "● feed";
  }
}

let refreshTimer = null;
let refreshRun = false;
function scheduleRefresh(run) {
  refreshRun = refreshRun || !!run;
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    const withRun = refreshRun;
    refreshTimer = null;
    refreshRun = false;
    try {
      await loadRuns(false);
      if (withRun && state.selected) await selectRun(state.selected);
    } catch (e) { showError(e.message); }
  }, 250);
}

function bind() {
  $("token").value = state.token;
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("ledgerflow-token", state.token);
    $("token-form").hidden = true;
    $("error").hidden = true;
    start().catch((err) => showError(err.message));
  });
  $("status-filter").onchange = () => loadRuns(false).catch((e) => showError(e.message));
  $("search").oninput = () => loadRuns(false).catch((e) => showError(e.message));
  $("refresh").onclick = () => loadRuns(false).catch((e) => showError(e.message));
  $("more").onclick = () => loadRuns(true).catch((e) => showError(e.message));
  $("pause").onclick = () => act("Pause", "pause");
  $("unpause").onclick = () => act("Unpause", "unpause");
  $("cancel").onclick = () => act("Cancel", "cancel", { reason: "cancelled from the inspector" });
  $("fork").onclick = () => {
    const seq = Number(prompt("Fork at which seq?", "1"));
    if (Number.isInteger(seq) && seq > 0) act("Fork at seq " + seq + " of", "fork", { seq });
  };
  $("respond-form").onsubmit = (e) => {
    e.preventDefault();
    let payload;
    try { payload = JSON.parse($("respond-payload").value); } catch (err) { showError("the answer is not JSON: " + err.message); return; }
    act("Respond to", "respond", { payload });
  };
}

async function start() {
  const stats = await api("/api/stats");
  $("mode").textContent = stats.mode === "live" ? "live application" : "store (no workflow code here)";
  await loadRuns(false);
  if (!state.feed) state.feed = follow();
}

bind();
start().catch((e) => showError(e.message));
