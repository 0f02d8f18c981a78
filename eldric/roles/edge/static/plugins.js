/* eldric chat: the page's plugin API, for the edge's action and widget plugins.
 *
 * A plugin's script (served by the edge under /plugins/<id>/, same origin, so the page's
 * CSP "script-src 'self'" admits it) calls
 *
 *   window.eldric.registerAction({id, label, run(reply)})
 *       a button on each finished reply; run gets {content, model} and may return (or
 *       resolve to) a string, shown beside the button as text.
 *   window.eldric.registerWidget({id, title, mount(el), onReply(stats)})
 *       a panel above the conversation: mount(el) once with the panel's body; onReply
 *       after every reply with {model, content, chunks, ms, ttft_ms, usage}.
 *
 * The page loads only the enabled ones: the edge lists them at /plugins/index.json. A
 * plugin that throws is disabled on the page (its button or panel goes), never the page.
 * Same safety rule as chat.js: text reaches the page as text nodes only.
 */
(function () {
  "use strict";

  const { h } = window.EldricMarkdown; // markdown.js, loaded before this file

  const actions = []; // {id, label, run}
  const widgets = []; // {id, title, mount, onReply, el}
  const hooks = { changed: () => {} }; // chat.js repaints the replies when actions change
  let panels = null; // the page's #widgets, once the DOM is there

  function fault(kind, id, e) {
    console.warn("eldric plugin " + kind + " " + id + " failed: " + ((e && e.message) || e));
  }

  function validId(spec) {
    return spec && typeof spec.id === "string" && /^[A-Za-z0-9._-]{1,64}$/.test(spec.id);
  }

  function registerAction(spec) {
    if (!validId(spec) || typeof spec.run !== "function" || typeof spec.label !== "string") {
      throw new TypeError("registerAction needs {id, label, run(reply)}");
    }
    if (actions.some((a) => a.id === spec.id)) throw new Error("action " + spec.id + " is registered already");
    actions.push({ id: spec.id, label: spec.label, run: spec.run });
    hooks.changed();
  }

  function registerWidget(spec) {
    if (!validId(spec) || typeof spec.mount !== "function") {
      throw new TypeError("registerWidget needs {id, title, mount(el), onReply(stats)}");
    }
    if (widgets.some((w) => w.id === spec.id)) throw new Error("widget " + spec.id + " is registered already");
    const w = { id: spec.id, title: String(spec.title || spec.id), mount: spec.mount,
      onReply: typeof spec.onReply === "function" ? spec.onReply : null, el: null };
    widgets.push(w);
    if (panels) place(w);
  }

  function place(w) {
    const body = h("div", { class: "widget-body" });
    w.el = h("section", { class: "widget", "data-plugin": w.id, "aria-label": w.title },
      h("h2", { class: "widget-title" }, w.title), body);
    panels.append(w.el);
    panels.hidden = false;
    try {
      w.mount(body);
    } catch (e) {
      drop(w, e, "mount");
    }
  }

  function drop(w, e, what) {
    fault("widget", w.id + " (" + what + ")", e);
    const i = widgets.indexOf(w);
    if (i >= 0) widgets.splice(i, 1);
    if (w.el) w.el.remove();
    if (panels && !panels.children.length) panels.hidden = true;
  }

  /* For chat.js: the actions' buttons for one finished reply. */
  function buttons(msg) {
    return actions.map((a) => {
      const note = h("span", { class: "msg-note plugin-result", "data-plugin": a.id });
      const btn = h("button", { type: "button", class: "copy-btn plugin-action", "data-plugin": a.id }, a.label);
      btn.addEventListener("click", async () => {
        try {
          const out = await a.run({ content: msg.content, model: msg.model });
          note.textContent = typeof out === "string" ? out : "";
        } catch (e) {
          fault("action", a.id, e);
          note.textContent = a.label + " failed";
        }
      });
      return h("span", { class: "plugin-slot" }, btn, note);
    });
  }

  /* For chat.js: a reply has finished; every widget hears of it. */
  function replied(stats) {
    for (const w of widgets.slice()) {
      if (!w.onReply) continue;
      try {
        w.onReply(Object.freeze(Object.assign({}, stats)));
      } catch (e) {
        drop(w, e, "onReply");
      }
    }
  }

  /* The enabled plugins' scripts: <script src> elements, same origin (the CSP's 'self'). */
  async function load(container) {
    panels = container;
    for (const w of widgets) place(w);
    let list = [];
    try {
      const resp = await fetch("/plugins/index.json", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!resp.ok) return; // an edge without plugins: nothing to load
      const body = await resp.json();
      list = body && Array.isArray(body.plugins) ? body.plugins : [];
    } catch (_) {
      return;
    }
    for (const p of list) {
      if (!p || typeof p.script !== "string" || !p.script.startsWith("/plugins/")) continue;
      const s = document.createElement("script");
      s.src = p.script;
      s.dataset.plugin = String(p.id);
      s.addEventListener("error", () => fault("script", p.id, "could not load " + p.script));
      document.head.append(s);
    }
  }

  window.eldric = Object.freeze({ registerAction: registerAction, registerWidget: registerWidget });
  window.EldricPlugins = Object.freeze({
    buttons: buttons, replied: replied, load: load,
    onChange: (fn) => { hooks.changed = fn; },
  });
})();
