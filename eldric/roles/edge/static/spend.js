// eldric spend page: usage and budgets from the edge's public admin APIs
// (/api/v1/usage, /api/v1/clients), refreshed every 2 s by the shared dashboard loop.
// The admin key is in an HttpOnly cookie the browser sends with these calls; a 401 (the
// key changed, the cookie expired) goes back to the sign-in. Everything from an API is
// inserted as text through the DOM API, never parsed as HTML.
"use strict";

(function () {
  const D = window.EldricDashboard;
  const C = window.EldricSpendChart;
  const { $, h } = D;
  const LOGIN = "/dashboard/login";
  const TIMEOUT_MS = 8000;
  const ARM_MS = 5000; // a Revoke button waits this long for its confirming click

  const state = { health: null, usageOff: false, chart: null, byClient: null, byModel: null,
                  clients: null, spent: {},
                  drawn: "", editing: null, armed: null };

  // ------------------------------------------------------------------ API

  // One call to the edge's API: the JSON answer, or an Error carrying the API's message.
  async function api(method, path, body) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    const init = { method, cache: "no-store", signal: ctl.signal, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    try {
      const resp = await fetch(path, init);
      if (resp.status === 401 && path.startsWith("/api/")) {
        location.assign(LOGIN);
        throw new Error("signed out");
      }
      let data = null;
      try { data = await resp.json(); } catch (_) { data = null; }
      if (!resp.ok && !(resp.status === 503 && path === "/api/v1/health")) {
        const err = (data && data.error) || {};
        throw Object.assign(new Error(err.message || `${path}: HTTP ${resp.status}`),
                            { status: resp.status, code: err.code });
      }
      D.serverDate(Date.parse(resp.headers.get("Date") || ""));
      return data;
    } finally {
      clearTimeout(timer);
    }
  }

  function period() {
    const n = Number($("range").value);
    const to = new Date();
    const from = new Date(to.getTime() - (n - 1) * 86400000);
    return { from, to, fromDay: from.toISOString().slice(0, 10), days: C.days(from, to) };
  }

  function usagePath(groupBy, fromDay) {
    return `/api/v1/usage?group_by=${encodeURIComponent(groupBy)}&from=${fromDay}`;
  }

  // An edge with --usage off answers the usage API 404 usage_off: the page then shows
  // the clients only, and says why.
  async function usage(groupBy, fromDay) {
    try {
      return await api("GET", usagePath(groupBy, fromDay));
    } catch (err) {
      if (err.code === "usage_off") return null;
      throw err;
    }
  }

  async function load() {
    const p = period();
    const split = $("split").value;
    const month = `${p.to.toISOString().slice(0, 7)}-01`;
    const [health, chart, byClient, byModel, clients, thisMonth] = await Promise.all([
      api("GET", "/api/v1/health").catch(() => null),
      usage(`day,${split}`, p.fromDay),
      usage("client", p.fromDay),
      usage("model", p.fromDay),
      api("GET", "/api/v1/clients"),
      usage("client,day", month),
    ]);
    const off = !byClient;
    Object.assign(state, { health, usageOff: off, byClient, byModel,
                           chart: off ? null : { ...chart, split, period: p },
                           clients: clients.clients || [],
                           spent: off ? {} : spentOf(thisMonth.rows || [], String(thisMonth.to || "").slice(0, 10)) });
  }

  // What each client used today and this month (UTC), from the usage API: the budget
  // bars' "used" where the clients API gives none (its "usage" is the budgets' own count).
  function spentOf(rows, today) {
    const out = {};
    for (const r of rows) {
      const s = out[r.client] || (out[r.client] = { tokens_today: 0, cost_today: 0, cost_month: 0 });
      s.cost_month += D.num(r.cost);
      if (r.day === today) {
        s.tokens_today += tokens(r);
        s.cost_today += D.num(r.cost);
      }
    }
    return out;
  }

  async function refresh() {
    try { await load(); } catch (err) { showError(err); }
    render();
  }

  // ------------------------------------------------------------------ formatting

  function money(v) {
    if (!D.isNum(v)) return "—";
    if (v === 0) return "$0";
    if (Math.abs(v) < 0.01) return `$${v.toFixed(4)}`;
    if (Math.abs(v) < 100000) return `$${v.toFixed(2)}`;
    return `$${D.short(v)}`;
  }

  function tokens(r) { return D.num(r.prompt_tokens) + D.num(r.completion_tokens); }

  function valueOf(metric) { return metric === "cost" ? (r) => D.num(r.cost) : tokens; }

  function fmtOf(metric) { return metric === "cost" ? money : D.short; }

  // ------------------------------------------------------------------ render

  function render() {
    D.renderHeader(state.health);
    if (!state.clients) return;
    $("usage-off").hidden = !state.usageOff;
    $("usage-parts").hidden = state.usageOff;
    if (!state.usageOff) {
      renderSummary(state.byClient);
      renderChart();
      renderTop(state.byClient);
      renderModels(state.byModel);
    }
    renderClients(state.clients);
  }

  function renderSummary(u) {
    const t = u.totals || {};
    const some = (u.unpriced_models || []).length > 0;
    D.setText("sum-cost", money(t.cost ?? (some ? null : 0)));
    D.setText("sum-cost-sub", !some ? "all models priced"
                               : D.isNum(t.cost) ? "priced models only" : "no priced model used");
    D.setText("sum-tokens", D.short(tokens(t)));
    D.setText("sum-tokens-sub", `${D.short(t.prompt_tokens)} in · ${D.short(t.completion_tokens)} out · ${D.short(t.cached_tokens)} cached`);
    D.setText("sum-requests", D.count(t.requests));
    D.setText("sum-errors", `${D.count(t.errors)} errors`);
    D.setText("sum-estimated", D.count(t.estimated_requests));
    const unpriced = u.unpriced_models || [];
    D.setText("sum-unpriced", unpriced.length);
    D.setText("unpriced-names", unpriced.length ? unpriced.join(", ") : "none");
    $("unpriced-names").title = unpriced.join("\n");
    D.markCount("sum-unpriced", unpriced.length);
    D.setText("sum-dropped", D.count(u.dropped));
    D.markCount("sum-dropped", u.dropped);
    D.setText("period", `${u.from ? u.from.slice(0, 10) : "—"} to ${u.to ? u.to.slice(0, 10) : "now"} (UTC days)`);
  }

  function renderChart() {
    const ch = state.chart;
    const metric = $("metric").value;
    const box = $("chart");
    D.setText("chart-title", `${metric === "cost" ? "Spend" : "Tokens"} per day by ${ch.split}`);
    const key = JSON.stringify([ch.rows, metric, ch.split, ch.period.days, box.clientWidth]);
    if (key === state.drawn) return;
    state.drawn = key;
    const list = C.series(ch.rows || [], ch.split, valueOf(metric)).filter((s) => s.total > 0);
    const anyTokens = (ch.rows || []).some((r) => tokens(r) > 0);
    if (!list.length) {
      box.replaceChildren();
      box.hidden = true;
      D.showEmpty("chart-empty", metric === "cost" && anyTokens
        ? "Nothing priced was used in this period: show tokens instead."
        : "No usage in this period yet.");
      $("legend").replaceChildren();
      return;
    }
    box.hidden = false;
    D.showEmpty("chart-empty", null);
    C.draw(box, ch.period.days, list, fmtOf(metric), metric === "tokens");
    $("legend").replaceChildren(...list.map((s, k) => h("li", { "data-series": s.name },
      h("span", { class: s.other ? "sw s-other" : `sw s${k}`, "aria-hidden": "true" }),
      s.name, " ", h("span", { class: "muted" }, fmtOf(metric)(s.total)))));
  }

  function renderTop(u) {
    const rows = [...(u.rows || [])];
    const priced = rows.some((r) => D.num(r.cost) > 0);
    const share = priced ? (r) => D.num(r.cost) : tokens;
    const total = rows.reduce((t, r) => t + share(r), 0);
    rows.sort((a, b) => share(b) - share(a) || tokens(b) - tokens(a));
    D.syncRows($("top-body"), rows.slice(0, 10), (r) => r.client, () => ({}), (r) => {
      const pct = total > 0 ? (100 * share(r)) / total : 0;
      return [h("td", { class: "id" }, r.client), h("td", { class: "num" }, D.count(r.requests)),
              h("td", { class: "num" }, D.count(r.errors)), h("td", { class: "num" }, D.short(tokens(r))),
              h("td", { class: "num" }, money(r.cost)),
              h("td", { class: "share" }, D.bar(pct), h("span", { class: "pct" }, D.percent(Math.round(pct))))];
    });
    D.showEmpty("top-empty", rows.length ? null : "No client used the gateway in this period.");
  }

  function renderModels(u) {
    const rows = [...((u && u.rows) || [])].sort((a, b) => tokens(b) - tokens(a));
    const unpriced = new Set((u && u.unpriced_models) || []);
    D.syncRows($("models-body"), rows, (r) => r.model, () => ({}), (r) => [
      h("td", {}, h("span", { class: "chip", title: r.model }, r.model)),
      h("td", { class: "num" }, D.count(r.requests)), h("td", { class: "num" }, D.short(r.prompt_tokens)),
      h("td", { class: "num" }, D.short(r.completion_tokens)), h("td", { class: "num" }, D.short(r.cached_tokens)),
      h("td", { class: "num" }, unpriced.has(r.model) || r.cost === null
        ? h("span", { class: "unpriced", title: "no price for this model: tokens only" }, "unpriced")
        : money(r.cost))]);
    D.showEmpty("models-empty", rows.length ? null : "No model was used in this period.");
  }

  // A budget cell: used against limit (a bar when there is a limit).
  function budget(used, limit, fmt, what) {
    if (!D.isNum(limit)) return h("td", { class: "budget" }, h("span", { class: "used" }, fmt(used ?? 0)), h("span", { class: "sub" }, "no limit"));
    const pct = limit > 0 ? (100 * D.num(used)) / limit : 100;
    const cls = pct >= 100 ? "bad" : pct >= 80 ? "warn" : "";
    return h("td", { class: "budget", "data-budget": what, "data-used": D.num(used), "data-limit": limit },
      D.bar(D.clampPct(pct), cls), h("span", { class: "used" }, `${fmt(used ?? 0)} / ${fmt(limit)}`));
  }

  function renderClients(list) {
    const rows = [...list].sort((a, b) => (a.name < b.name ? -1 : 1));
    D.syncRows($("clients-body"), rows, (c) => c.name, () => ({}), (c) => {
      const u = { ...(state.spent[c.name] || {}), ...(c.usage || {}) };
      const from = c.static ? "from the configuration" : null;
      return [
        h("td", {}, h("span", { class: "id" }, c.name), c.static ? h("span", { class: "tag" }, "config") : null,
          c.description ? h("span", { class: "sub" }, c.description) : null),
        h("td", {}, (c.scopes || []).join(", ")),
        h("td", { class: "num" }, D.isNum(c.rpm) ? D.count(c.rpm) : "default"),
        h("td", { class: "num" }, D.isNum(c.tpm) ? D.count(c.tpm) : "—"),
        budget(u.tokens_today, c.max_tokens_per_day, D.short, "tokens_today"),
        budget(u.cost_today, c.max_cost_per_day, money, "cost_today"),
        budget(u.cost_month, c.max_cost_per_month, money, "cost_month"),
        h("td", {}, c.allowed_models ? c.allowed_models.map((m) => h("span", { class: "chip" }, m)) : h("span", { class: "na" }, "all")),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "ghost", "data-action": "edit", "data-name": c.name,
                        disabled: !!c.static, title: from }, "Edit"),
          h("button", { type: "button", class: "ghost danger", "data-action": "revoke", "data-name": c.name,
                        "data-armed": armed(c.name) ? "1" : null, disabled: !!c.static, title: from },
            armed(c.name) ? "Confirm revoke" : "Revoke")),
      ];
    });
    D.showEmpty("clients-empty", rows.length ? null : "No clients yet: create one above.");
  }

  // ------------------------------------------------------------------ the clients' form

  const NUMBERS = ["rpm", "tpm", "max_tokens_per_day", "max_cost_per_day", "max_cost_per_month"];

  function openForm(client) {
    state.editing = client ? client.name : null;
    const f = $("client-form");
    f.hidden = false;
    $("new-key").hidden = true;
    D.setText("form-title", client ? `Edit ${client.name}` : "New client");
    D.setText("form-save", client ? "Save" : "Create");
    $("f-name").value = client ? client.name : "";
    $("f-name").disabled = !!client;
    $("f-description").value = client ? client.description || "" : "";
    for (const k of NUMBERS) $(`f-${k}`).value = client && D.isNum(client[k]) ? String(client[k]) : "";
    $("f-allowed_models").value = client && client.allowed_models ? client.allowed_models.join(", ") : "";
    const scopes = client ? client.scopes || [] : ["inference"];
    for (const box of scopeBoxes()) box.checked = scopes.includes(box.value);
    $("form-error").hidden = true;
    (client ? $("f-description") : $("f-name")).focus();
  }

  function scopeBoxes() { return [...$("f-scopes").querySelectorAll("input[type=checkbox]")]; }

  function closeForm() {
    $("client-form").hidden = true;
    state.editing = null;
  }

  // The form as the API's body; on an edit, an empty field clears that limit (null).
  function formBody(editing) {
    const body = {};
    if (!editing) body.name = $("f-name").value.trim();
    body.description = $("f-description").value.trim();
    for (const k of NUMBERS) {
      const raw = $(`f-${k}`).value.trim();
      if (raw !== "") body[k] = k.startsWith("max_cost") ? Number(raw) : parseInt(raw, 10);
      else if (editing) body[k] = null;
    }
    body.scopes = scopeBoxes().filter((box) => box.checked).map((box) => box.value);
    const globs = $("f-allowed_models").value.split(/[\s,]+/).filter(Boolean);
    if (globs.length) body.allowed_models = globs;
    else if (editing) body.allowed_models = null;
    return body;
  }

  async function save(ev) {
    ev.preventDefault();
    const editing = state.editing;
    $("form-save").disabled = true;
    try {
      if (editing) {
        await api("PATCH", `/api/v1/clients/${encodeURIComponent(editing)}`, formBody(editing));
        closeForm();
      } else {
        const made = await api("POST", "/api/v1/clients/register", formBody(null));
        closeForm();
        D.setText("new-key-name", made.name);
        D.setText("new-key-value", made.api_key);
        $("new-key").hidden = false;
      }
      await refresh();
    } catch (err) {
      showFormError(err);
    } finally {
      $("form-save").disabled = false;
    }
  }

  function showFormError(err) {
    const el = $("form-error");
    el.textContent = String(err && err.message ? err.message : err);
    el.hidden = false;
  }

  function showError(err) {
    $("notice").title = String(err && err.message ? err.message : err);
  }

  // Revoke asks twice: the first click arms the row's button (kept in state, so the 2 s
  // re-render keeps it armed) for ARM_MS, a second click then revokes.
  function armed(name) { return state.armed && state.armed.name === name && Date.now() < state.armed.until; }

  async function revoke(button, name) {
    if (!armed(name)) {
      state.armed = { name, until: Date.now() + ARM_MS };
      renderClients(state.clients);
      setTimeout(() => renderClients(state.clients), ARM_MS + 50);
      return;
    }
    state.armed = null;
    button.disabled = true;
    try {
      await api("DELETE", `/api/v1/clients/${encodeURIComponent(name)}`);
      if (state.editing === name) closeForm();
    } catch (err) {
      showFormError(err);
    }
    await refresh();
  }

  function onClientsClick(ev) {
    const button = ev.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    const name = button.dataset.name;
    if (button.dataset.action === "edit") openForm((state.clients || []).find((c) => c.name === name));
    else revoke(button, name);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("client-form").addEventListener("submit", save);
    $("form-cancel").addEventListener("click", closeForm);
    $("new-client").addEventListener("click", () => openForm(null));
    $("new-key-done").addEventListener("click", () => { $("new-key").hidden = true; D.setText("new-key-value", ""); });
    $("clients-body").addEventListener("click", onClientsClick);
    for (const id of ["range", "split"]) $(id).addEventListener("change", refresh);
    $("metric").addEventListener("change", () => { if (state.chart) renderChart(); });
    window.addEventListener("resize", () => { if (state.chart) renderChart(); });
  });

  D.poll(load, render);

  window.EldricSpend = { state, money, refresh };
})();
