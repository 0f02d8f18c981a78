// The spend page's chart: stacked bars per UTC day, one colour per series (a client or a
// model), drawn as SVG through the DOM API (no library, nothing inline: the page's CSP
// holds). Every bar segment carries its numbers (data-day, data-series, data-value) and a
// <title> tooltip, so what is drawn can be read back exactly.
"use strict";

window.EldricSpendChart = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const MAX_SERIES = 6; // the rest is one "other" series
  const OTHER = "other";
  const HEIGHT = 240;
  const PAD = { top: 12, right: 12, bottom: 26, left: 64 };

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }

  // The UTC days from `from` to `to` (Date objects), as "YYYY-MM-DD".
  function days(from, to) {
    const out = [];
    const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()));
    while (d <= to) {
      out.push(d.toISOString().slice(0, 10));
      d.setUTCDate(d.getUTCDate() + 1);
    }
    return out;
  }

  // rows of /api/v1/usage?group_by=day,<key>  ->  [{name, total, values: {day: v}}], the
  // largest MAX_SERIES first, then "other" (the rest, summed).
  function series(rows, key, valueOf) {
    const by = new Map();
    for (const row of rows) {
      const name = String(row[key] ?? "(none)");
      let s = by.get(name);
      if (!s) by.set(name, s = { name, total: 0, values: {} });
      const v = valueOf(row);
      s.total += v;
      s.values[row.day] = (s.values[row.day] || 0) + v;
    }
    const all = [...by.values()].sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1));
    if (all.length <= MAX_SERIES) return all;
    const other = { name: OTHER, total: 0, values: {}, other: true };
    for (const s of all.slice(MAX_SERIES - 1)) {
      other.total += s.total;
      for (const [day, v] of Object.entries(s.values)) other.values[day] = (other.values[day] || 0) + v;
    }
    return [...all.slice(0, MAX_SERIES - 1), other];
  }

  // A "nice" axis top above max: 1, 2 or 5 times a power of ten.
  function niceTop(max) {
    if (!(max > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  }

  // How many grid steps up to top: 4, or for whole numbers (tokens) a count that keeps
  // every line on a whole number (10: 5 steps of 2, not 4 of 2.5).
  function steps(top, whole) {
    if (!whole || top % 4 === 0) return 4;
    if (top % 5 === 0) return 5;
    return top % 2 === 0 ? 2 : 1;
  }

  // Draw into `box` (replacing what was there): dayList, seriesList (from series()),
  // fmt(v) for the axis and tooltips; whole: the values are whole numbers. Returns the
  // <svg>.
  function draw(box, dayList, seriesList, fmt, whole) {
    const width = Math.max(320, box.clientWidth || 800);
    const plotW = width - PAD.left - PAD.right, plotH = HEIGHT - PAD.top - PAD.bottom;
    const totals = dayList.map((d) => seriesList.reduce((t, s) => t + (s.values[d] || 0), 0));
    const top = niceTop(Math.max(0, ...totals));
    const y = (v) => PAD.top + plotH - (v / top) * plotH;
    const step = plotW / Math.max(1, dayList.length);
    const barW = Math.max(1, Math.min(36, step * 0.72));
    const root = svg("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`,
                              role: "img", class: "chart-svg", "data-top": top });
    const grid = svg("g", { class: "grid" });
    const n = steps(top, whole);
    for (let i = 0; i <= n; i++) {
      const v = (top * i) / n, yy = y(v);
      grid.append(svg("line", { x1: PAD.left, x2: width - PAD.right, y1: yy, y2: yy }),
                  svg("text", { x: PAD.left - 8, y: yy + 4, "text-anchor": "end" }, fmt(v)));
    }
    root.append(grid);
    const labelEvery = Math.ceil(dayList.length / Math.max(1, Math.floor(plotW / 64)));
    const bars = svg("g", { class: "bars" });
    dayList.forEach((day, i) => {
      const x = PAD.left + i * step + (step - barW) / 2;
      let base = 0;
      seriesList.forEach((s, k) => {
        const v = s.values[day] || 0;
        if (v <= 0) return;
        const y0 = y(base), y1 = y(base + v);
        base += v;
        bars.append(svg("rect", {
          x: x.toFixed(2), y: y1.toFixed(2), width: barW.toFixed(2),
          height: Math.max(0.5, y0 - y1).toFixed(2),
          class: s.other ? "seg s-other" : `seg s${k}`,
          "data-day": day, "data-series": s.name, "data-value": v,
        }, svg("title", {}, `${day} · ${s.name}: ${fmt(v)}`)));
      });
      if (i % labelEvery === 0) {
        bars.append(svg("text", { x: (x + barW / 2).toFixed(2), y: HEIGHT - 8, "text-anchor": "middle",
                                  class: "day" }, day.slice(5)));
      }
    });
    root.append(bars);
    root.setAttribute("aria-label", `${seriesList.length} series over ${dayList.length} days, ` +
                      `highest day ${fmt(Math.max(0, ...totals))}`);
    box.replaceChildren(root);
    return root;
  }

  return { days, series, draw, niceTop, steps, OTHER, MAX_SERIES };
})();
