// eldric controller dashboard: polls the controller's JSON API every 2 s and renders it.
// Everything shown that comes from workers (ids, URLs, model names, tags) is inserted as
// text nodes or attribute values through the DOM API: never parsed as HTML.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 4000;
  const STATUSES = ["healthy", "degraded", "unhealthy", "offline"];

  const $ = (id) => document.getElementById(id);

  // Last good data: kept on screen when the controller cannot be reached.
  const state = { workers: null, models: null, health: null, router: null,
                  okAt: null, failing: false, skewMs: 0 };

  // ------------------------------------------------------------------ DOM helpers

  // h("td", {class: "x", title: t}, child, "text", ...): strings become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "style") el.style.cssText = v;
        else el.setAttribute(k, String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function setText(id, text) {
    const el = $(id);
    const s = String(text);
    if (el.textContent !== s) el.textContent = s;
  }

  // ------------------------------------------------------------------ formatting

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function duration(s) {
    if (!isNum(s) || s < 0) return "—";
    s = Math.floor(s);
    const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${m}m`;
    if (m) return `${m}m ${sec}s`;
    return `${sec}s`;
  }

  function ago(ts) {
    if (!isNum(ts)) return "never";
    const s = Math.max(0, (Date.now() + state.skewMs) / 1000 - ts);
    if (s < 120) return `${Math.floor(s)}s ago`;
    return `${duration(s)} ago`;
  }

  function clock(d) {
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function statusOf(w) {
    return STATUSES.includes(w.status) ? w.status : "healthy";
  }

  // ------------------------------------------------------------------ cells

  function loadCell(value) {
    if (!isNum(value)) return h("td", { class: "num" }, h("span", { class: "na", title: "not reported" }, "—"));
    const pct = Math.max(0, Math.min(100, value));
    const level = pct >= 90 ? "bad" : pct >= 70 ? "warn" : "";
    return h("td", { class: "num" },
      h("span", { class: "load" },
        h("span", { class: `bar ${level}`.trim(), role: "meter", "aria-valuemin": 0,
                    "aria-valuemax": 100, "aria-valuenow": pct.toFixed(0) },
          h("span", { style: `width:${pct.toFixed(1)}%` })),
        h("span", { class: "pct" }, `${Math.round(value)}%`)));
  }

  function gpuCell(load) {
    const cell = loadCell(load.gpu_percent);
    if (isNum(load.gpu_memory_percent)) cell.title = `GPU memory ${Math.round(load.gpu_memory_percent)}%`;
    return cell;
  }

  function workerCells(w) {
    const load = w.load || {};
    const status = statusOf(w);
    const subParts = [];
    if (w.version) subParts.push(`v${w.version}`);
    if (Array.isArray(w.tags) && w.tags.length) subParts.push(w.tags.join(", "));

    const backend = w.backend
      ? h("td", { class: "backend", title: w.backend.url || "" },
          h("span", { class: `dot ${w.backend.healthy ? "up" : "down"}`,
                      title: w.backend.healthy ? "backend healthy" : "backend not healthy" }),
          w.backend.type || "?")
      : h("td", { class: "backend" }, h("span", { class: "na" }, "—"));

    const active = isNum(load.active_requests) ? load.active_requests : 0;
    const max = isNum(load.max_concurrency) ? String(load.max_concurrency) : "—";
    const models = Array.isArray(w.models) ? w.models : [];

    const silent = isNum(w.last_heartbeat) ? (Date.now() + state.skewMs) / 1000 - w.last_heartbeat : Infinity;
    const ageClass = status === "offline" || silent > 90 ? "age gone" : silent > 45 ? "age late" : "age";

    return [
      h("td", { class: "id", title: isNum(w.registered_at)
                  ? `registered ${new Date(w.registered_at * 1000).toLocaleString()}` : "" },
        w.id || "?", subParts.length ? h("span", { class: "sub" }, subParts.join(" · ")) : null),
      h("td", { class: "type" }, w.worker_type || "?"),
      h("td", null, h("span", { class: `badge s-${status}` }, status)),
      h("td", { class: "url", title: w.url || "" }, w.url || "—"),
      backend,
      loadCell(load.cpu_percent),
      loadCell(load.memory_percent),
      gpuCell(load),
      h("td", { class: "num", title: "active requests / max concurrency" },
        String(active), h("span", { class: "na" }, ` / ${max}`)),
      h("td", null, models.length
        ? h("div", { class: "chips" }, models.map((m) => h("span", { class: "chip", title: m }, m)))
        : h("span", { class: "na" }, "none")),
      h("td", { class: `num ${ageClass}`,
                title: isNum(w.last_heartbeat) ? new Date(w.last_heartbeat * 1000).toLocaleString() : "" },
        ago(w.last_heartbeat)),
    ];
  }

  // Update a row cell by cell so unchanged cells (and any text selected in them) stay.
  function patchRow(tr, cells) {
    cells.forEach((cell, i) => {
      const old = tr.cells[i];
      if (!old) tr.append(cell);
      else if (old.outerHTML !== cell.outerHTML) old.replaceWith(cell);
    });
    while (tr.cells.length > cells.length) tr.deleteCell(-1);
  }

  // Put rows in `body` in the given order, reusing the <tr> already there for each key.
  function syncRows(body, items, keyAttr, keyOf, cellsOf, classOf) {
    const existing = new Map();
    for (const tr of Array.from(body.rows)) existing.set(tr.getAttribute(keyAttr), tr);
    const seen = new Set();
    items.forEach((item, i) => {
      const key = keyOf(item);
      seen.add(key);
      let tr = existing.get(key);
      if (!tr) {
        tr = h("tr");
        tr.setAttribute(keyAttr, key);
      }
      patchRow(tr, cellsOf(item));
      if (classOf) for (const [cls, on] of Object.entries(classOf(item))) tr.classList.toggle(cls, on);
      if (body.rows[i] !== tr) body.insertBefore(tr, body.rows[i] || null);
    });
    for (const [key, tr] of existing) if (!seen.has(key)) tr.remove();
  }

  // ------------------------------------------------------------------ render

  function matchesFilter(w, q) {
    if (!q) return true;
    const hay = [w.id, w.worker_type, statusOf(w), w.url, w.backend && w.backend.type,
                 ...(w.models || []), ...(w.tags || [])].join(" ").toLowerCase();
    return q.split(/\s+/).every((part) => hay.includes(part));
  }

  function renderWorkers() {
    const workers = (state.workers || []).slice().sort((a, b) =>
      String(a.worker_type).localeCompare(String(b.worker_type)) || String(a.id).localeCompare(String(b.id)));
    const body = $("workers-body");
    syncRows(body, workers, "data-worker-id", (w) => String(w.id), workerCells,
             (w) => ({ offline: statusOf(w) === "offline" }));

    const q = $("filter").value.trim().toLowerCase();
    let shown = 0;
    for (const w of workers) {
      const tr = Array.from(body.rows).find((r) => r.getAttribute("data-worker-id") === String(w.id));
      const ok = matchesFilter(w, q);
      if (tr) tr.classList.toggle("filtered", !ok);
      if (ok) shown++;
    }

    const empty = $("workers-empty");
    if (state.workers === null) {
      empty.hidden = true;
    } else if (!workers.length) {
      empty.replaceChildren("No workers registered yet. Start one with ",
        h("code", null, `eldric --role worker --controller ${location.origin}`), ".");
      empty.hidden = false;
    } else if (!shown) {
      empty.replaceChildren(`No worker matches “${$("filter").value.trim()}”.`);
      empty.hidden = false;
    } else {
      empty.hidden = true;
    }
  }

  function modelCells(m) {
    const ids = Array.isArray(m.workers) ? m.workers : [];
    const cov = isNum(m.coverage_percent) ? Math.max(0, Math.min(100, m.coverage_percent)) : 0;
    return [
      h("td", { class: "id" }, m.id),
      h("td", { class: "num", title: ids.join("\n") }, String(ids.length)),
      h("td", null, h("div", { class: "coverage" },
        h("span", { class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
                    "aria-valuenow": cov.toFixed(0) },
          h("span", { style: `width:${cov.toFixed(1)}%` })),
        h("span", { class: "pct" }, `${Number.isInteger(cov) ? cov : cov.toFixed(1)}%`))),
    ];
  }

  function renderModels() {
    const models = (state.models || []).slice().sort((a, b) => String(a.id).localeCompare(String(b.id)));
    syncRows($("models-body"), models, "data-model-id", (m) => String(m.id), modelCells);
    const empty = $("models-empty");
    empty.hidden = state.models === null || models.length > 0;
    if (!empty.hidden) empty.replaceChildren("No model is served by a live inference or cloud worker.");
  }

  function renderHeader() {
    const health = state.health;
    if (health) {
      setText("version", health.version ? `v${health.version}` : "—");
      setText("uptime", duration(health.uptime_seconds));
    }

    if (state.workers) {
      const counts = { healthy: 0, degraded: 0, unhealthy: 0, offline: 0 };
      for (const w of state.workers) counts[statusOf(w)]++;
      setText("count-total", state.workers.length);
      for (const s of STATUSES) {
        setText(`count-${s}`, counts[s]);
        const card = $(`count-${s}`).parentElement;
        card.classList.toggle("zero", counts[s] === 0);
        card.classList.toggle("nonzero", counts[s] > 0);
      }
      const bad = counts.unhealthy + counts.offline;
      document.title = `eldric controller · ${counts.healthy}/${state.workers.length} healthy` +
        (bad ? ` · ${bad} down` : "");
    }
    if (state.models) setText("count-models", state.models.length);
    if (state.router) {
      const strategy = $("strategy");
      strategy.classList.toggle("unset", !state.router.strategy);
      if (state.router.strategy) {
        setText("strategy", state.router.strategy);
        strategy.title = "set at the controller; routers without a fixed strategy follow it";
      } else {
        setText("strategy", "router default");
        strategy.title = "not set at the controller: each router uses its own (load_based unless configured)";
      }
    }

    const live = $("live");
    live.classList.toggle("stale", state.failing);
    live.classList.toggle("waiting", !state.okAt && !state.failing);
    $("notice").hidden = !state.failing;
    $("main").classList.toggle("stale", state.failing && state.okAt !== null);
    if (state.okAt) {
      setText("updated", state.failing ? `last update ${clock(new Date(state.okAt))}`
                                       : `updated ${clock(new Date(state.okAt))}`);
    } else {
      setText("updated", state.failing ? "no data yet" : "connecting…");
    }
  }

  function render() {
    renderHeader();
    renderWorkers();
    renderModels();
  }

  // ------------------------------------------------------------------ fetching

  async function getJSON(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch(path, { signal: ctl.signal, cache: "no-store",
                                       headers: { Accept: "application/json" } });
      // /api/v1/health answers 503 with a JSON body when unhealthy: still data.
      if (!resp.ok && !(resp.status === 503 && path.endsWith("/health"))) {
        throw new Error(`${path}: HTTP ${resp.status}`);
      }
      const date = Date.parse(resp.headers.get("Date") || "");
      return { body: await resp.json(), date };
    } finally {
      clearTimeout(timer);
    }
  }

  async function refresh() {
    try {
      const [workers, models, health] = await Promise.all([
        getJSON("/api/v1/workers"), getJSON("/api/v1/models"), getJSON("/api/v1/health")]);
      state.workers = Array.isArray(workers.body.workers) ? workers.body.workers : [];
      state.router = workers.body.router_config || {};
      state.models = Array.isArray(models.body.models) ? models.body.models : [];
      state.health = health.body;
      // Heartbeat ages are the controller's clock against ours: correct for a skew that
      // the HTTP Date header (1 s resolution) can actually see.
      if (isNum(workers.date)) {
        const skew = workers.date + 500 - Date.now();
        state.skewMs = Math.abs(skew) > 2000 ? skew : 0;
      }
      state.okAt = Date.now();
      state.failing = false;
    } catch (err) {
      state.failing = true;
      $("notice").title = String(err && err.message ? err.message : err);
    }
    render();
    setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setText("origin", location.host);
    $("filter").addEventListener("input", renderWorkers);
    render();
    refresh();
  });
})();
