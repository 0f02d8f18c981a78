// eldric dashboards: the shared helpers (element builder, formatting, fetching with a time
// limit, the header's live/unreachable state, the refresh loop). Every role app serves it
// at /static/eldric/dashboard.js; a page's own script, loaded after it, uses it as
// window.EldricDashboard. Everything shown that comes from an API is inserted as text
// nodes or attribute values through the DOM API: never parsed as HTML. Nothing here needs
// inline script or style, so it works under a strict CSP (widths are set through CSSOM).
"use strict";

window.EldricDashboard = (function () {
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 4000;

  const $ = (id) => document.getElementById(id);

  // The last successful refresh, whether the latest one failed, and the server's clock
  // against ours (ages of the server's timestamps are corrected by it).
  const live = { okAt: null, failing: false, skewMs: 0 };

  // ------------------------------------------------------------------ DOM helpers

  // h("td", {class: "x", title: t}, child, "text", ...): strings become text nodes.
  // "style" is set through CSSOM (el.style), which a CSP allows, unlike a style attribute.
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

  // A meter bar filled to pct (0-100); cls adds a class ("warn", "bad").
  function bar(pct, cls) {
    return h("span", { class: cls ? `bar ${cls}` : "bar", role: "meter", "aria-valuemin": 0,
                       "aria-valuemax": 100, "aria-valuenow": pct.toFixed(0) },
      h("span", { style: `width:${pct.toFixed(1)}%` }));
  }

  // A summary card's value: "zero" (greyed) or "nonzero" (in its status colour).
  function markCount(id, n) {
    const card = $(id).parentElement;
    card.classList.toggle("zero", num(n) === 0);
    card.classList.toggle("nonzero", num(n) > 0);
  }

  // The note under a table (`id`): shows `content` (a string, node or list of them), or
  // hides when content is null.
  function showEmpty(id, content) {
    const el = $(id);
    el.hidden = content === null;
    if (!el.hidden) el.replaceChildren(...[content].flat());
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

  // Put rows in `body` in the given order, reusing the <tr> already there for each key
  // (kept in data-key). attrsOf(item): a new row's attributes; classOf(item): {class: on}.
  function syncRows(body, items, keyOf, attrsOf, cellsOf, classOf) {
    const existing = new Map();
    for (const tr of Array.from(body.rows)) existing.set(tr.dataset.key, tr);
    const seen = new Set();
    items.forEach((item, i) => {
      const key = keyOf(item);
      seen.add(key);
      let tr = existing.get(key);
      if (!tr) {
        tr = h("tr", attrsOf(item));
        tr.dataset.key = key;
      }
      patchRow(tr, cellsOf(item));
      if (classOf) for (const [cls, on] of Object.entries(classOf(item))) tr.classList.toggle(cls, on);
      if (body.rows[i] !== tr) body.insertBefore(tr, body.rows[i] || null);
    });
    for (const [key, tr] of existing) if (!seen.has(key)) tr.remove();
  }

  // ------------------------------------------------------------------ formatting

  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function num(v) { return isNum(v) ? v : 0; }

  const exact = new Intl.NumberFormat("en-US");
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

  // 12345 -> "12,345"; short: the same below 100,000, then "123.5K", "4.2M".
  function count(n) { return exact.format(num(n)); }
  function short(n) { return num(n) >= 100000 ? compact.format(n) : exact.format(num(n)); }

  // 0-100 as "42%", "12.5%"
  function percent(pct) { return `${Number.isInteger(pct) ? pct : pct.toFixed(1)}%`; }

  function clampPct(v) { return Math.max(0, Math.min(100, v)); }

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

  // Seconds since the server's timestamp ts (Unix seconds), by the server's clock.
  function secondsSince(ts) {
    return isNum(ts) ? Math.max(0, (Date.now() + live.skewMs) / 1000 - ts) : Infinity;
  }

  function ago(ts) {
    if (!isNum(ts)) return "never";
    const s = secondsSince(ts);
    if (s < 120) return `${Math.floor(s)}s ago`;
    return `${duration(s)} ago`;
  }

  function clock(d) {
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // "eldric controller · 3/4 healthy · 1 down"
  function pageTitle(role, healthy, total, down) {
    document.title = `eldric ${role} · ${healthy}/${total} healthy` + (down ? ` · ${down} down` : "");
  }

  // ------------------------------------------------------------------ header

  // Version and uptime from a health body (if any), then whether the page is live: the
  // dot, "updated …", the unreachable notice, and the last good data dimmed when stale.
  function renderHeader(health) {
    if (health) {
      setText("version", health.version ? `v${health.version}` : "—");
      setText("uptime", duration(health.uptime_seconds));
    }
    const dot = $("live");
    dot.classList.toggle("stale", live.failing);
    dot.classList.toggle("waiting", !live.okAt && !live.failing);
    $("notice").hidden = !live.failing;
    $("main").classList.toggle("stale", live.failing && live.okAt !== null);
    if (live.okAt) {
      setText("updated", live.failing ? `last update ${clock(new Date(live.okAt))}`
                                      : `updated ${clock(new Date(live.okAt))}`);
    } else {
      setText("updated", live.failing ? "no data yet" : "connecting…");
    }
  }

  // ------------------------------------------------------------------ fetching

  // GET a JSON API path within FETCH_TIMEOUT_MS: {body, date} (date: the server's Date
  // header, ms). A health path answers 503 with a JSON body when unhealthy: still data.
  async function getJSON(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch(path, { signal: ctl.signal, cache: "no-store",
                                       headers: { Accept: "application/json" } });
      if (!resp.ok && !(resp.status === 503 && path.endsWith("/health"))) {
        throw new Error(`${path}: HTTP ${resp.status}`);
      }
      const date = Date.parse(resp.headers.get("Date") || "");
      return { body: await resp.json(), date };
    } finally {
      clearTimeout(timer);
    }
  }

  // Correct ages for the server's clock from a response's Date header, when the skew is
  // one the header (1 s resolution) can actually see.
  function serverDate(date) {
    if (!isNum(date)) return;
    const skew = date + 500 - Date.now();
    live.skewMs = Math.abs(skew) > 2000 ? skew : 0;
  }

  // Every REFRESH_MS: load() (fetch and keep the data; throws when the server cannot be
  // reached, and the last good data stays on screen), then render(). Starts once the page
  // has loaded, after a first render of the empty page.
  function poll(load, render) {
    async function refresh() {
      try {
        await load();
        live.okAt = Date.now();
        live.failing = false;
        $("notice").removeAttribute("title");
      } catch (err) {
        live.failing = true;
        $("notice").title = String(err && err.message ? err.message : err);
      }
      render();
      setTimeout(refresh, REFRESH_MS);
    }
    document.addEventListener("DOMContentLoaded", () => {
      setText("origin", location.host);
      render();
      refresh();
    });
  }

  return { $, h, setText, bar, markCount, showEmpty, syncRows, isNum, num, count, short,
           percent, clampPct, duration, secondsSince, ago, pageTitle, renderHeader, getJSON,
           serverDate, poll };
})();
