// eldric cloud dashboard: polls the cloud worker's JSON API every 2 s and renders it.
// Everything shown that comes from the API (backend names, URLs, model names, errors) is
// inserted as text nodes or attribute values through the DOM API: never parsed as HTML.
// The page is served with a strict CSP: no inline script or style, widths are set via CSSOM.
// The shared helpers (h, formatting, fetching, the refresh loop) are /static/eldric/dashboard.js.
"use strict";

(function () {
  const { $, h, setText, bar, markCount, showEmpty, syncRows, isNum, num, count, short,
          percent, clampPct, secondsSince, ago, pageTitle, renderHeader, getJSON, serverDate,
          poll } = window.EldricDashboard;
  const TITLE_MODELS = 40; // model names listed in a tooltip before "… and N more"

  // Last good data: kept on screen when the cloud worker cannot be reached.
  const state = { backends: null, health: null, models: null };

  // ------------------------------------------------------------------ data

  // The backend's usage, summed over its models.
  function totals(b) {
    const t = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0 };
    const usage = b.usage && typeof b.usage === "object" ? b.usage : {};
    for (const row of Object.values(usage)) {
      if (!row || typeof row !== "object") continue;
      for (const k of Object.keys(t)) t[k] += num(row[k]);
    }
    return t;
  }

  // [label, css class] of a backend's state.
  function statusOf(b) {
    if (b.enabled === false) return ["disabled", "s-disabled"];
    if (b.auth_failed) return ["key refused", "s-key-refused"];
    if (b.status === "degraded") return ["degraded", "s-degraded"]; // answers; no model list
    if (b.healthy) return ["healthy", "s-healthy"];
    return ["unhealthy", "s-unhealthy"];
  }

  function errorOf(b) {
    return [b.last_error, b.models_error].filter((e) => typeof e === "string" && e)
      .filter((e, i, all) => all.indexOf(e) === i).join("\n");
  }

  function modelsTitle(models) {
    if (!models.length) return "no models listed";
    const shown = models.slice(0, TITLE_MODELS).map(String);
    if (models.length > TITLE_MODELS) shown.push(`… and ${models.length - TITLE_MODELS} more`);
    return shown.join("\n");
  }

  // ------------------------------------------------------------------ cells

  function numCell(value, extra) {
    const cls = ["num", num(value) === 0 ? "zero" : "nonzero", extra].filter(Boolean).join(" ");
    return h("td", { class: cls }, count(value));
  }

  function backendCells(b) {
    const [label, cls] = statusOf(b);
    const err = errorOf(b);
    const t = totals(b);
    const models = Array.isArray(b.models) ? b.models : [];
    const silent = secondsSince(b.last_check);
    const latency = isNum(b.latency_ms) ? b.latency_ms : null;

    return [
      h("td", { class: "id" }, b.name || "?", h("span", { class: "sub" }, b.type || "?")),
      h("td", { class: "status", title: err || null },
        h("span", { class: `badge ${cls}` }, label),
        err ? h("span", { class: "err-mark", title: err, "aria-label": `last error: ${err}` }, "!") : null),
      h("td", { class: "url", title: b.url || "" }, b.url || "—"),
      h("td", { class: "key", title: b.api_key ? "the key's last characters" : "no key" },
        b.api_key || h("span", { class: "na" }, "none")),
      h("td", { class: "num" }, isNum(b.priority) ? String(b.priority) : "—"),
      latency === null
        ? h("td", { class: "num" }, h("span", { class: "na", title: "not measured yet" }, "—"))
        : h("td", { class: `num${latency >= 2000 ? " slow" : ""}`,
                    title: "moving average of whole requests and probes" },
            String(Math.round(latency)), h("span", { class: "unit" }, "ms")),
      h("td", { class: `num models-cell${models.length ? "" : " zero"}`,
                title: models.length ? modelsTitle(models) : (b.models_error || "no models listed") },
        String(models.length)),
      h("td", { class: `num ${t.requests ? "nonzero" : "zero"}`,
                title: `calls to the backend: ${count(b.requests)}, failed: ${count(b.failures)}` },
        count(t.requests)),
      numCell(t.errors, "errs"),
      numCell(t.prompt_tokens),
      numCell(t.completion_tokens),
      h("td", { class: `num ${b.enabled !== false && silent > 600 ? "age gone" : "age"}`,
                title: isNum(b.last_check) ? new Date(b.last_check * 1000).toLocaleString() : "not probed yet" },
        ago(b.last_check)),
    ];
  }

  function usageCells(u, total) {
    const share = total > 0 ? clampPct((100 * u.requests) / total) : 0;
    return [
      h("td", { class: "id" }, u.backend),
      h("td", null, h("span", { class: "chip", title: u.model }, u.model)),
      numCell(u.requests),
      numCell(u.errors, "errs"),
      numCell(u.prompt_tokens),
      numCell(u.completion_tokens),
      h("td", null, h("div", { class: "share" }, bar(share), h("span", { class: "pct" }, percent(share)))),
    ];
  }

  // ------------------------------------------------------------------ render

  function renderBackends() {
    // The API's order: priority, then name (the order routing tries them in).
    const backends = state.backends || [];
    syncRows($("backends-body"), backends, (b) => String(b.name),
             (b) => ({ "data-backend": String(b.name) }), backendCells,
             (b) => ({ disabled: b.enabled === false }));
    showEmpty("backends-empty", state.backends === null || backends.length > 0 ? null
      : ["No backends configured. Start with ",
         h("code", null, "eldric --role cloud --backends openai,anthropic"), " or POST ",
         h("code", null, "/api/v1/backends"), "."]);
  }

  function usageRows() {
    const rows = [];
    for (const b of state.backends || []) {
      const usage = b.usage && typeof b.usage === "object" ? b.usage : {};
      for (const [model, u] of Object.entries(usage)) {
        if (!u || typeof u !== "object") continue;
        rows.push({ backend: String(b.name), model: String(model), requests: num(u.requests),
                    errors: num(u.errors), prompt_tokens: num(u.prompt_tokens),
                    completion_tokens: num(u.completion_tokens) });
      }
    }
    return rows.sort((a, b) => b.requests - a.requests || a.backend.localeCompare(b.backend) ||
                               a.model.localeCompare(b.model));
  }

  function renderUsage() {
    const rows = usageRows();
    const total = rows.reduce((s, u) => s + u.requests, 0);
    syncRows($("usage-body"), rows, (u) => `${u.backend}\u0000${u.model}`,
             (u) => ({ "data-backend": u.backend, "data-model": u.model }),
             (u) => usageCells(u, total));
    showEmpty("usage-empty", state.backends === null || rows.length > 0 ? null
      : ["No requests yet. Send one to ", h("code", null, `${location.origin}/v1/chat/completions`), "."]);
  }

  function renderSummary() {
    const health = state.health;
    if (health) {
      setText("worker-id", health.worker_id || "not registered");
      $("worker-id").classList.toggle("unset", !health.worker_id);
      $("worker-id").title = health.worker_id ? "worker id at the controller"
                                              : "no controller: this worker is not registered";
      const status = ["healthy", "degraded", "unhealthy"].includes(health.status) ? health.status : "unknown";
      const badge = $("status");
      setText("status", status);
      badge.className = `badge s-${status}`;
      const counts = health.backends && typeof health.backends === "object" ? health.backends : {};
      setText("count-total", count(counts.total));
      setText("count-healthy", count(counts.healthy));
      setText("count-degraded", count(counts.degraded));
      setText("count-unhealthy", count(counts.unhealthy));
      setText("count-models", count(health.models_available));
      markCount("count-healthy", counts.healthy);
      markCount("count-degraded", counts.degraded);
      markCount("count-unhealthy", counts.unhealthy);
      pageTitle("cloud", num(counts.healthy), num(counts.total), num(counts.unhealthy));
    }
    if (state.models) {
      const owners = new Set(state.models.map((m) => String(m.owned_by)));
      setText("models-sub", `${count(state.models.length)} route${state.models.length === 1 ? "" : "s"}` +
        ` · ${owners.size} backend${owners.size === 1 ? "" : "s"}`);
      $("models-sub").title = "routes: model × backend pairs, as /v1/models lists them";
    }
    if (state.backends) {
      // Enabled backends only, as /health counts them.
      const live = state.backends.filter((b) => b.enabled !== false);
      const off = state.backends.length - live.length;
      setText("total-sub", off ? `${off} more disabled` : "all enabled");
      const stateOf = (b) => (b.status === "degraded" ? "degraded" : b.healthy ? "healthy" : "unhealthy");
      const names = (st) => live.filter((b) => stateOf(b) === st)
        .map((b) => `${b.name}${b.auth_failed ? " (key refused)" : ""}`);
      for (const st of ["healthy", "degraded", "unhealthy"]) {
        const list = names(st);
        setText(`${st}-sub`, list.length ? list.join(", ") : "none");
        $(`${st}-sub`).title = list.join("\n");
      }

      const t = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0 };
      for (const b of state.backends) {
        const bt = totals(b);
        for (const k of Object.keys(t)) t[k] += bt[k];
      }
      const tokens = t.prompt_tokens + t.completion_tokens;
      setText("count-requests", short(t.requests));
      $("count-requests").title = count(t.requests);
      setText("count-errors", t.errors ? `${count(t.errors)} failed` : "none failed");
      $("count-errors").classList.toggle("bad", t.errors > 0);
      setText("count-tokens", short(tokens));
      $("count-tokens").title = count(tokens);
      setText("count-split", `${short(t.prompt_tokens)} prompt · ${short(t.completion_tokens)} completion`);
    }
  }

  function render() {
    renderHeader(state.health);
    renderSummary();
    renderBackends();
    renderUsage();
  }

  // ------------------------------------------------------------------ fetching

  async function load() {
    const [backends, health, models] = await Promise.all([
      getJSON("/api/v1/backends"), getJSON("/health"), getJSON("/v1/models")]);
    state.backends = Array.isArray(backends.body.backends) ? backends.body.backends : [];
    state.health = health.body && typeof health.body === "object" ? health.body : {};
    state.models = Array.isArray(models.body.data) ? models.body.data : [];
    // Probe ages are the worker's clock against ours.
    serverDate(backends.date);
  }

  poll(load, render);
})();
