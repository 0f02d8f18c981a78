// eldric controller dashboard: polls the controller's JSON API every 2 s and renders it.
// Everything shown that comes from workers (ids, URLs, model names, tags) is inserted as
// text nodes or attribute values through the DOM API: never parsed as HTML. The shared
// helpers (h, formatting, fetching, the refresh loop) are /static/eldric/dashboard.js.
"use strict";

(function () {
  const { $, h, setText, bar, markCount, showEmpty, syncRows, isNum, percent, clampPct,
          duration, secondsSince, ago, pageTitle, renderHeader, getJSON, serverDate,
          poll } = window.EldricDashboard;
  const STATUSES = ["healthy", "degraded", "unhealthy", "offline"];

  // Last good data: kept on screen when the controller cannot be reached.
  const state = { workers: null, models: null, health: null, router: null };

  function statusOf(w) {
    return STATUSES.includes(w.status) ? w.status : "healthy";
  }

  // ------------------------------------------------------------------ cells

  function loadCell(value) {
    if (!isNum(value)) return h("td", { class: "num" }, h("span", { class: "na", title: "not reported" }, "—"));
    const pct = clampPct(value);
    const level = pct >= 90 ? "bad" : pct >= 70 ? "warn" : "";
    return h("td", { class: "num" },
      h("span", { class: "load" }, bar(pct, level), h("span", { class: "pct" }, `${Math.round(value)}%`)));
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

    const silent = secondsSince(w.last_heartbeat);
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

  function modelCells(m) {
    const ids = Array.isArray(m.workers) ? m.workers : [];
    const cov = isNum(m.coverage_percent) ? clampPct(m.coverage_percent) : 0;
    return [
      h("td", { class: "id" }, m.id),
      h("td", { class: "num", title: ids.join("\n") }, String(ids.length)),
      h("td", null, h("div", { class: "coverage" }, bar(cov), h("span", { class: "pct" }, percent(cov)))),
    ];
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
    syncRows(body, workers, (w) => String(w.id), (w) => ({ "data-worker-id": String(w.id) }),
             workerCells, (w) => ({ offline: statusOf(w) === "offline" }));

    const q = $("filter").value.trim().toLowerCase();
    let shown = 0;
    for (const w of workers) {
      const tr = Array.from(body.rows).find((r) => r.getAttribute("data-worker-id") === String(w.id));
      const ok = matchesFilter(w, q);
      if (tr) tr.classList.toggle("filtered", !ok);
      if (ok) shown++;
    }

    if (state.workers === null) {
      showEmpty("workers-empty", null);
    } else if (!workers.length) {
      showEmpty("workers-empty", ["No workers registered yet. Start one with ",
        h("code", null, `eldric --role worker --controller ${location.origin}`), "."]);
    } else if (!shown) {
      showEmpty("workers-empty", `No worker matches “${$("filter").value.trim()}”.`);
    } else {
      showEmpty("workers-empty", null);
    }
  }

  function renderModels() {
    const models = (state.models || []).slice().sort((a, b) => String(a.id).localeCompare(String(b.id)));
    syncRows($("models-body"), models, (m) => String(m.id), (m) => ({ "data-model-id": String(m.id) }),
             modelCells);
    showEmpty("models-empty", state.models === null || models.length > 0 ? null
      : "No model is served by a live inference or cloud worker.");
  }

  function renderSummary() {
    if (state.workers) {
      const counts = { healthy: 0, degraded: 0, unhealthy: 0, offline: 0 };
      for (const w of state.workers) counts[statusOf(w)]++;
      setText("count-total", state.workers.length);
      for (const s of STATUSES) {
        setText(`count-${s}`, counts[s]);
        markCount(`count-${s}`, counts[s]);
      }
      pageTitle("controller", counts.healthy, state.workers.length, counts.unhealthy + counts.offline);
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
  }

  function render() {
    renderHeader(state.health);
    renderSummary();
    renderWorkers();
    renderModels();
  }

  // ------------------------------------------------------------------ fetching

  async function load() {
    const [workers, models, health] = await Promise.all([
      getJSON("/api/v1/workers"), getJSON("/api/v1/models"), getJSON("/api/v1/health")]);
    state.workers = Array.isArray(workers.body.workers) ? workers.body.workers : [];
    state.router = workers.body.router_config || {};
    state.models = Array.isArray(models.body.models) ? models.body.models : [];
    state.health = health.body;
    // Heartbeat ages are the controller's clock against ours.
    serverDate(workers.date);
  }

  document.addEventListener("DOMContentLoaded", () => $("filter").addEventListener("input", renderWorkers));
  poll(load, render);
})();
