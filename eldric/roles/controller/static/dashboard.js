// eldric controller dashboard: polls the controller's JSON API every 2 s and renders it.
// Everything shown that comes from workers (ids, URLs, model names, tags) is inserted as
// text nodes or attribute values through the DOM API: never parsed as HTML. The shared
// helpers (h, formatting, fetching, the refresh loop) are /static/eldric/dashboard.js.
"use strict";

(function () {
  const { $, h, setText, bar, markCount, showEmpty, syncRows, isNum, num, percent, clampPct,
          duration, secondsSince, ago, pageTitle, renderHeader, getJSON, serverDate,
          poll } = window.EldricDashboard;
  const STATUSES = ["healthy", "degraded", "unhealthy", "offline"];
  const SOURCES = {
    default: "router default",
    config: "fixed in the router's config",
    controller: "from this controller",
    runtime: "changed at the router",
  };

  // Last good data: kept on screen when the controller cannot be reached. Routers register
  // like workers (worker_type "router") but are listed apart: they are never routed to.
  const state = { workers: null, routers: null, models: null, health: null, router: null };

  function statusOf(w) {
    return STATUSES.includes(w.status) ? w.status : "healthy";
  }

  // ------------------------------------------------------------------ cells

  // One meter line of the load cell: "cpu ▬▬ 42%" (or "—" when not reported).
  function meter(label, value, title) {
    const parts = [h("span", { class: "k" }, label)];
    if (isNum(value)) {
      const pct = clampPct(value);
      parts.push(bar(pct, pct >= 90 ? "bad" : pct >= 70 ? "warn" : ""),
                 h("span", { class: "pct" }, `${Math.round(value)}%`));
    } else {
      parts.push(h("span", { class: "na pct", title: "not reported" }, "—"));
    }
    return h("span", { class: "meter", title: title || null }, parts);
  }

  // CPU, memory and GPU stacked in one column: three columns of bars pushed the table
  // past 1280 px and the heartbeat out of sight.
  function loadCell(load) {
    const gpuMem = isNum(load.gpu_memory_percent) ? `GPU memory ${Math.round(load.gpu_memory_percent)}%` : null;
    return h("td", { class: "load" },
      meter("cpu", load.cpu_percent), meter("mem", load.memory_percent), meter("gpu", load.gpu_percent, gpuMem));
  }

  function idCell(w, subParts) {
    return h("td", { class: "id", title: isNum(w.registered_at)
                       ? `registered ${new Date(w.registered_at * 1000).toLocaleString()}` : "" },
      w.id || "?", subParts.length ? h("span", { class: "sub" }, subParts.join(" · ")) : null);
  }

  function heartbeatCell(w, status) {
    const silent = secondsSince(w.last_heartbeat);
    const ageClass = status === "offline" || silent > 90 ? "age gone" : silent > 45 ? "age late" : "age";
    return h("td", { class: `num ${ageClass}`,
                     title: isNum(w.last_heartbeat) ? new Date(w.last_heartbeat * 1000).toLocaleString() : "" },
      ago(w.last_heartbeat));
  }

  function modelChips(models) {
    return models.length
      ? h("div", { class: "chips" }, models.map((m) => h("span", { class: "chip", title: m }, m)))
      : h("span", { class: "na" }, "none");
  }

  function subOf(w) {
    const parts = [];
    if (w.version) parts.push(`v${w.version}`);
    if (Array.isArray(w.tags) && w.tags.length) parts.push(w.tags.join(", "));
    // the edge client whose key registered it (a worker contributed from anywhere)
    if (w.contributed_by) parts.push(`by ${w.contributed_by}`);
    return parts;
  }

  // A worker behind NAT is reached through its edge's tunnel, never by the controller.
  function urlCell(w) {
    const url = w.url || "";
    if (!/^tunnel(\+http)?:\/\//.test(url)) return h("td", { class: "url", title: url }, url || "—");
    return h("td", { class: "url", title: `${url}: reached through the edge's tunnel` },
             url, h("span", { class: "na via-tunnel" }, " via tunnel"));
  }

  function workerCells(w) {
    const load = w.load || {};
    const status = statusOf(w);

    const backend = w.backend
      ? h("td", { class: "backend", title: w.backend.url || "" },
          h("span", { class: `dot ${w.backend.healthy ? "up" : "down"}`,
                      title: w.backend.healthy ? "backend healthy" : "backend not healthy" }),
          w.backend.type || "?")
      : h("td", { class: "backend" }, h("span", { class: "na" }, "—"));

    const active = isNum(load.active_requests) ? load.active_requests : 0;
    const max = isNum(load.max_concurrency) ? String(load.max_concurrency) : "—";

    return [
      idCell(w, subOf(w)),
      h("td", { class: "type" }, w.worker_type || "?"),
      h("td", null, h("span", { class: `badge s-${status}` }, status)),
      urlCell(w),
      backend,
      loadCell(load),
      h("td", { class: "num", title: "active requests / max concurrency" },
        String(active), h("span", { class: "na" }, ` / ${max}`)),
      h("td", { class: "models-cell" }, modelChips(Array.isArray(w.models) ? w.models : [])),
      heartbeatCell(w, status),
    ];
  }

  // The cluster's strategy (null: not set here) against what a router really uses.
  function differs(r) {
    const mine = r.router && r.router.strategy;
    const cluster = state.router && state.router.strategy;
    return Boolean(cluster && mine && mine !== cluster);
  }

  function strategyCell(r) {
    const info = r.router || {};
    const source = SOURCES[info.strategy_source] || info.strategy_source || "not reported";
    const cluster = state.router && state.router.strategy;
    return h("td", { class: "strategy" },
      h("span", { class: "name" }, info.strategy || "—"),
      h("span", { class: "sub" }, source),
      differs(r)
        ? h("span", { class: "differs", title: "routers whose strategy is fixed locally ignore the controller's" },
            `differs from the cluster's ${cluster}`)
        : null);
  }

  function routerCells(r) {
    const info = r.router || {};
    const status = statusOf(r);
    const models = Array.isArray(r.models) ? r.models : [];
    const load = r.load || {};
    return [
      idCell(r, subOf(r)),
      h("td", null, h("span", { class: `badge s-${status}` }, status)),
      h("td", { class: "url", title: r.url || "" }, r.url || "—"),
      strategyCell(r),
      h("td", { class: "num", title: "healthy workers / workers it knows" },
        String(isNum(info.healthy_workers) ? info.healthy_workers : 0),
        h("span", { class: "na" }, ` / ${isNum(info.workers) ? info.workers : 0}`)),
      h("td", { class: "num" }, String(isNum(load.active_requests) ? load.active_requests : 0)),
      h("td", { class: "models-cell" }, modelChips(models)),
      heartbeatCell(r, status),
    ];
  }

  // ------------------------------------------------------------------ forecast

  // One row per (router, model) of the forecasts routers send in their heartbeats.
  function forecasts() {
    const rows = [];
    for (const r of state.routers || []) {
      const list = r.router && Array.isArray(r.router.forecast) ? r.router.forecast : [];
      for (const f of list) {
        if (f && typeof f.model === "string") rows.push({ router: r, f });
      }
    }
    return rows.sort((a, b) => a.f.model.localeCompare(b.f.model) ||
                               String(a.router.id).localeCompare(String(b.router.id)));
  }

  function rps(v) { return isNum(v) ? (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) : "—"; }

  // The band as a span on the row's own scale (up to its upper bound or the observed
  // rate, whichever is higher), the expected rate and the observed one as marks on it.
  function bandCell(f) {
    const top = 1.05 * Math.max(num(f.high_rps), num(f.observed_rps));
    const at = (v) => clampPct(isNum(v) && top > 0 ? (100 * v) / top : 0).toFixed(1);
    const low = at(f.low_rps), high = at(f.high_rps);
    return h("td", { class: "band" }, h("div", { class: "bandbox" },
      h("span", { class: "scale", role: "img",
                  "aria-label": `expected ${rps(f.low_rps)} to ${rps(f.high_rps)} requests/s, now ${rps(f.observed_rps)}` },
        h("span", { class: "range", style: `left:${low}%;width:${Math.max(0, high - low).toFixed(1)}%` }),
        h("span", { class: "mark expected", style: `left:${at(f.expected_rps)}%` }),
        h("span", { class: `mark now${f.anomaly ? " off" : ""}`, style: `left:${at(f.observed_rps)}%` })),
      h("span", { class: "range-text" }, `${rps(f.low_rps)} – ${rps(f.high_rps)}`)));
  }

  function forecastCells(row) {
    const { router: r, f } = row;
    return [
      h("td", { class: "id", title: f.model }, f.model),
      h("td", { class: "url", title: r.url || "" }, r.id || "?"),
      h("td", { class: "num" }, rps(f.observed_rps)),
      h("td", { class: "num" }, rps(f.expected_rps)),
      bandCell(f),
      h("td", null, f.anomaly
        ? h("span", { class: "badge s-unhealthy", title: "the observed rate left its forecast band" }, "anomaly")
        : h("span", { class: "badge s-healthy" }, "as expected")),
    ];
  }

  function renderForecast() {
    const rows = forecasts();
    syncRows($("forecast-body"), rows, ({ router: r, f }) => JSON.stringify([String(r.id), f.model]),
             ({ router: r, f }) => ({ "data-forecast-id": `${r.id} ${f.model}` }),
             forecastCells,
             ({ router: r, f }) => ({ offline: statusOf(r) === "offline", anomaly: Boolean(f.anomaly) }));
    showEmpty("forecast-empty", state.routers === null || rows.length ? null
      : "No router has sent a forecast yet: routers forecast the models they route (--predict, on by default).");
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
    const hay = [w.id, w.worker_type, statusOf(w), w.url, w.contributed_by, w.backend && w.backend.type,
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

  function renderRouters() {
    const routers = (state.routers || []).slice().sort((a, b) => String(a.id).localeCompare(String(b.id)));
    syncRows($("routers-body"), routers, (r) => String(r.id), (r) => ({ "data-router-id": String(r.id) }),
             routerCells, (r) => ({ offline: statusOf(r) === "offline", differs: differs(r) }));
    showEmpty("routers-empty", state.routers === null || routers.length ? null
      : ["No router has registered. A router joins with ",
         h("code", null, `eldric --role router --controller ${location.origin}`), "."]);
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
    if (state.routers) {
      const live = state.routers.filter((r) => statusOf(r) !== "offline");
      const off = live.filter(differs).length;
      const n = live.length;
      setText("routers-summary", `${n} router${n === 1 ? "" : "s"}` + (off ? ` · ${off} use${off === 1 ? "s" : ""} another` : ""));
      $("routers-summary").classList.toggle("differs", off > 0);
    }
  }

  function render() {
    renderHeader(state.health);
    renderSummary();
    renderWorkers();
    renderRouters();
    renderForecast();
    renderModels();
  }

  // ------------------------------------------------------------------ fetching

  async function load() {
    const [workers, routers, models, health] = await Promise.all([
      getJSON("/api/v1/workers"), getJSON("/api/v1/workers?type=router"),
      getJSON("/api/v1/models"), getJSON("/api/v1/health")]);
    const list = (reply) => Array.isArray(reply.body.workers) ? reply.body.workers : [];
    state.workers = list(workers);
    state.routers = list(routers);
    state.router = workers.body.router_config || {};
    state.models = Array.isArray(models.body.models) ? models.body.models : [];
    state.health = health.body;
    // Heartbeat ages are the controller's clock against ours.
    serverDate(workers.date);
    // The Models tab (models.js) draws its coverage matrix from the same data.
    document.dispatchEvent(new CustomEvent("eldric:cluster",
      { detail: { workers: state.workers, models: state.models } }));
  }

  document.addEventListener("DOMContentLoaded", () => $("filter").addEventListener("input", renderWorkers));
  poll(load, render);
})();
