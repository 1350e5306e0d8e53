// Cohesix hive page: one EventSource ("snapshot" then "delta" events), a virtualised worker list,
// uPlot time series for /proc/ingest, and queen actions posted to /api/action. No external assets.
"use strict";
(function () {
  const ROW = 22;
  const state = { workers: new Map(), series: [], fields: [], log: [], gpus: [], meta: {}, count: 0,
                  version: 0, rows: [], dirty: true, plotsDirty: true };
  const $ = (id) => document.getElementById(id);
  const list = $("workers"), spacer = $("workers-spacer");
  const pool = [];        // recycled row elements

  // -- event stream ---------------------------------------------------------------------------
  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("snapshot", (ev) => { applySnapshot(JSON.parse(ev.data)); setConn("live", "live"); });
    es.addEventListener("delta", (ev) => applyDelta(JSON.parse(ev.data)));
    es.onerror = () => setConn("reconnecting…", "down");
  }
  function setConn(text, cls) { const c = $("conn"); c.textContent = text; c.className = "pill " + cls; }

  function applySnapshot(s) {
    state.workers = new Map(s.workers.map((w) => [w.id, w]));
    state.series = s.series; state.fields = s.fields; state.log = s.log; state.gpus = s.gpus || [];
    state.meta = s.meta; state.version = s.v; state.count = s.count;
    if (s.status && s.status !== "live") setConn(s.status, "down");
    state.dirty = state.plotsDirty = true; state.logDirty = state.gpusDirty = true;
    schedule();
  }
  function applyDelta(d) {
    state.version = d.v;
    if (d.status) setConn(d.status, d.status === "live" ? "live" : "down");
    if (d.meta) state.meta = d.meta;
    for (const id of d.removed || []) state.workers.delete(id);
    for (const w of d.workers || []) state.workers.set(w.id, w);
    if ((d.workers && d.workers.length) || (d.removed && d.removed.length)) state.dirty = true;
    if (d.ingest) { state.series.push(d.ingest); if (state.series.length > 240) state.series.shift(); state.plotsDirty = true; }
    if (d.log) { state.log = state.log.concat(d.log).slice(-200); state.logDirty = true; }
    if (d.gpus) { state.gpus = d.gpus; state.gpusDirty = true; }
    if (d.tick_ms !== undefined) state.tickMs = d.tick_ms;
    schedule();
  }

  let pending = false;
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(render); } }

  // -- rendering ------------------------------------------------------------------------------
  function render() {
    pending = false;
    if (state.dirty) { buildRows(); state.dirty = false; }
    drawRows();
    if (state.plotsDirty) { drawPlots(); state.plotsDirty = false; }
    if (state.logDirty) { drawLog(); state.logDirty = false; }
    if (state.gpusDirty) { drawGpus(); state.gpusDirty = false; }
    const m = state.meta || {};
    $("meta").textContent = `schema ${m.schema || "?"} · ${m.sharding ? "sharded width " + m.width : "flat"} · ` +
      `${m.frame_schema || "?"} · tick ${state.tickMs !== undefined ? state.tickMs : "?"} ms`;
  }

  function byIdNumber(a, b) {
    const na = parseInt(a.id.replace(/^\D+/, ""), 10), nb = parseInt(b.id.replace(/^\D+/, ""), 10);
    return (na - nb) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }
  function buildRows() {
    const groups = new Map();
    for (const w of state.workers.values()) {
      if (!groups.has(w.group)) groups.set(w.group, []);
      groups.get(w.group).push(w);
    }
    const rows = [];
    for (const g of [...groups.keys()].sort()) {
      const ws = groups.get(g).sort(byIdNumber);
      rows.push({ group: g, n: ws.length });
      for (const w of ws) rows.push({ worker: w.id });
    }
    state.rows = rows;
    $("worker-count").textContent = String(state.workers.size);
    spacer.style.height = (rows.length * ROW) + "px";
  }

  function drawRows() {
    const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 5);
    const last = Math.min(state.rows.length, first + Math.ceil(list.clientHeight / ROW) + 10);
    const needed = last - first;
    while (pool.length < needed) {
      const el = document.createElement("div");
      el.className = "row";
      list.appendChild(el);
      pool.push(el);
    }
    for (let i = 0; i < pool.length; i++) {
      const el = pool[i];
      if (i >= needed) { el.style.display = "none"; el.removeAttribute("data-worker"); continue; }
      const r = state.rows[first + i];
      el.style.display = "";
      el.style.top = ((first + i) * ROW) + "px";
      if (r.group !== undefined) {
        el.className = "row group"; el.removeAttribute("data-worker"); el._cells = null;
        el.textContent = (r.group === "all" ? "all workers" : "shard " + r.group) + " (" + r.n + ")";
        continue;
      }
      const w = state.workers.get(r.worker);
      if (!el._cells) {            // built once per recycled element; later renders only set text
        el.innerHTML = "";
        el._cells = { id: cell("id", ""), beats: cell("beats", ""), rate: cell("rate", ""), last: cell("last", "") };
        const acts = cell("acts", "");
        acts.append(button("kill"), button("commit"));
        el.append(el._cells.id, el._cells.beats, el._cells.rate, el._cells.last, acts);
      }
      el.className = "row worker";
      el.setAttribute("data-worker", w.id);
      setText(el._cells.id, w.id + (w.kind === "gpu" ? " (gpu " + (w.gpu || "?") + ")" : ""));
      setText(el._cells.beats, String(w.beats));
      setText(el._cells.rate, w.rate.toFixed(2) + "/s");
      setText(el._cells.last, w.last.length ? w.last[w.last.length - 1] : "");
      el.title = w.last.join("\n");
    }
  }
  function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
  function cell(cls, text) { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; }
  function button(label) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = label;
    b.className = "act-" + label; b.setAttribute("data-act", label); return b;
  }
  // one listener for every row button: the worker is the row's at click time (rows are recycled)
  list.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-act]");
    const row = b && b.closest("[data-worker]");
    if (row) act({ action: b.getAttribute("data-act"), worker: row.getAttribute("data-worker") });
  });
  list.addEventListener("scroll", () => schedule(), { passive: true });
  window.addEventListener("resize", () => schedule());

  function drawLog() {
    const pre = $("log");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = state.log.join("\n");
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function drawGpus() {
    const box = $("gpus");
    box.innerHTML = "";
    if (!state.gpus.length) { box.textContent = "no GPUs"; return; }
    for (const g of state.gpus) {
      const d = document.createElement("div"); d.className = "gpu"; d.setAttribute("data-gpu", g.id);
      const i = g.info || {}, l = g.lease, j = g.job;
      d.textContent = `${g.id} ${i.name || ""} ${i.memory_mb || "?"} MiB sm=${i.sm_count || "?"} · lease: ` +
        (l ? `${l.state || l.text} ${l.worker_id || ""} mem=${l.mem_mb || "?"} streams=${l.streams || "?"}` +
             (l.reason ? " reason=" + l.reason : "") : "none") +
        " · last job: " + (j ? (j.text || [j.job, j.state, j.detail].filter((x) => x !== undefined).join(" ")) : "none");
      box.appendChild(d);
    }
  }

  // -- plots (uPlot) --------------------------------------------------------------------------
  const plots = {};
  const PLOTS = [["latency ms", ["p50_ms", "p95_ms"]], ["backpressure", ["backpressure"]],
                 ["dropped", ["dropped"]], ["queued", ["queued"]]];
  function drawPlots() {
    if (!state.fields.length || typeof uPlot === "undefined") return;
    const xs = state.series.map((p) => p[0]);
    for (const [title, names] of PLOTS) {
      const cols = names.map((n) => state.series.map((p) => p[1 + state.fields.indexOf(n)]));
      const data = [xs, ...cols];
      if (!plots[title]) {
        const div = document.createElement("div"); div.className = "plot"; div.setAttribute("data-plot", title);
        $("plots").appendChild(div);
        const colors = ["#2a6fdb", "#d9822b"];
        plots[title] = new uPlot({ title, width: 270, height: 100, legend: { show: true },
          scales: { x: { time: false } },
          series: [{ label: "s" }, ...names.map((n, k) => ({ label: n, stroke: colors[k % 2], width: 1.5 }))] },
          data, div);
      } else {
        plots[title].setData(data);
      }
    }
  }

  // -- actions --------------------------------------------------------------------------------
  function showStatus(ok, text) {
    const s = $("action-status"); s.className = "status " + (ok ? "ok" : "error"); s.textContent = text;
  }
  async function act(body) {
    showStatus(true, "…");
    try {
      const r = await fetch("/api/action", { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify(body), credentials: "same-origin" });
      let doc = {};
      try { doc = await r.json(); } catch (e) { doc = { ok: false, message: "HTTP " + r.status }; }
      showStatus(!!doc.ok, doc.message || ("HTTP " + r.status));
    } catch (e) {
      showStatus(false, "request failed: " + e);
    }
  }
  function formAction(id, name) {
    $(id).addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = { action: name };
      for (const input of $(id).querySelectorAll("input")) if (input.value.trim() !== "") body[input.name] = input.value.trim();
      act(body);
    });
  }
  formAction("spawn-heartbeat", "spawn-heartbeat");
  formAction("spawn-gpu", "spawn-gpu");
  formAction("kill", "kill");
  formAction("commit", "commit");
  connect();
})();
