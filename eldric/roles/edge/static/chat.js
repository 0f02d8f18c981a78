/* eldric chat: plain JavaScript, no framework, no build step.
 *
 * Safety rule for this file: text that comes from the model, the user or the server is
 * only ever put into the page as text nodes (textContent, Node.append of a string). The
 * Markdown renderer builds DOM elements one by one; nothing here assigns innerHTML.
 * The API key lives in an HttpOnly cookie, so this script never sees it.
 */
(function () {
  "use strict";

  const STORE_KEY = "eldric.chat.conversations.v1";
  const CURRENT_KEY = "eldric.chat.current";
  const MODEL_KEY = "eldric.chat.model";
  const MAX_CONVERSATIONS = 300;
  const MOCK_MODEL = "eldric-mock"; // the worker's --backend mock: made-up tokens

  // From sse.js and markdown.js, loaded before this file.
  const { createSSEParser } = window.EldricSSE;
  const { h, copyButton, renderMarkdown } = window.EldricMarkdown;
  const plugins = window.EldricPlugins; // plugins.js: the action and widget plugins

  /* ------------------------------------------------------------------- storage */

  function uid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function loadConversations() {
    try {
      const raw = localStorage.getItem(STORE_KEY);
      const parsed = raw ? JSON.parse(raw) : null;
      const list = parsed && Array.isArray(parsed.conversations) ? parsed.conversations : [];
      return list.filter((c) => c && typeof c.id === "string" && Array.isArray(c.messages))
        .map((c) => ({
          id: c.id,
          title: typeof c.title === "string" ? c.title : "Conversation",
          created: +c.created || Date.now(),
          updated: +c.updated || +c.created || Date.now(),
          messages: c.messages.filter((m) => m && (m.role === "user" || m.role === "assistant"))
            .map((m) => ({
              role: m.role,
              content: typeof m.content === "string" ? m.content : "",
              model: typeof m.model === "string" ? m.model : undefined,
              error: typeof m.error === "string" ? m.error : undefined,
              stopped: m.stopped === true || undefined,
              truncated: m.truncated === true || undefined,
            })),
        }));
    } catch (_) {
      return [];
    }
  }

  /* --------------------------------------------------------------------- state */

  const $ = (id) => document.getElementById(id);
  const ui = {};
  const state = {
    conversations: [],
    currentId: null,
    stream: null, // {convId, msg, controller, el}
    models: [],
    paintQueued: false,
    authFailed: false,
    // The edge needs no key (it marks the page): a 401 then comes from further upstream,
    // and a sign-in page could not help, so it is shown as an error like any other.
    keyless: false,
  };

  function persist() {
    const write = () => localStorage.setItem(STORE_KEY, JSON.stringify({
      version: 1,
      conversations: state.conversations,
    }));
    try {
      write();
      return;
    } catch (_) { /* full: drop the oldest conversations and retry */ }
    const byAge = state.conversations.slice().sort((a, b) => a.updated - b.updated);
    while (byAge.length > 1) {
      const victim = byAge.shift();
      if (victim.id === state.currentId) continue;
      state.conversations = state.conversations.filter((c) => c !== victim);
      try {
        write();
        notice("Browser storage is full: the oldest conversations were removed.");
        renderSidebar();
        return;
      } catch (_) { /* keep dropping */ }
    }
    notice("Browser storage is full: this conversation could not be saved.");
  }

  function current() {
    return state.conversations.find((c) => c.id === state.currentId) || null;
  }

  function setCurrent(id) {
    state.currentId = id;
    try {
      if (id) localStorage.setItem(CURRENT_KEY, id);
      else localStorage.removeItem(CURRENT_KEY);
    } catch (_) { /* ignore */ }
  }

  function titleOf(text) {
    const t = text.replace(/\s+/g, " ").trim();
    return t.length > 80 ? t.slice(0, 79) + "…" : t || "Conversation";
  }

  /* ---------------------------------------------------------------- rendering */

  function notice(text, actionLabel, action) {
    ui.noticeText.textContent = text;
    ui.notice.hidden = false;
    if (actionLabel) {
      ui.noticeAction.textContent = actionLabel;
      ui.noticeAction.hidden = false;
      ui.noticeAction.onclick = () => { ui.notice.hidden = true; action(); };
    } else {
      ui.noticeAction.hidden = true;
      ui.noticeAction.onclick = null;
    }
  }

  function dayGroup(ts) {
    const d = new Date(ts);
    const today = new Date();
    today.setHours(0, 0, 0, 0);
    const diff = (today - new Date(d.getFullYear(), d.getMonth(), d.getDate())) / 86400000;
    if (diff <= 0) return "Today";
    if (diff < 2) return "Yesterday";
    if (diff < 7) return "Previous 7 days";
    if (diff < 30) return "Previous 30 days";
    return "Older";
  }

  function renderSidebar() {
    const list = ui.convList;
    list.textContent = "";
    const sorted = state.conversations.slice().sort((a, b) => b.updated - a.updated);
    let group = null;
    for (const conv of sorted) {
      const g = dayGroup(conv.updated);
      if (g !== group) {
        group = g;
        list.append(h("li", { class: "conv-group", "aria-hidden": "true" }, g));
      }
      const active = conv.id === state.currentId;
      const streaming = state.stream && state.stream.convId === conv.id;
      const del = h("button", {
        type: "button", class: "conv-delete", title: "Delete conversation",
        "aria-label": "Delete conversation: " + conv.title,
      });
      del.append(svgIcon("M5 7h14M10 7V5h4v2M7 7l1 12h8l1-12"));
      del.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (!del.classList.contains("armed")) { // first click arms, second deletes
          del.classList.add("armed");
          del.title = "Click again to delete";
          setTimeout(() => { del.classList.remove("armed"); del.title = "Delete conversation"; }, 2500);
          return;
        }
        deleteConversation(conv.id);
      });
      const open = h("button", { type: "button", class: "conv-open", title: conv.title }, conv.title);
      open.addEventListener("click", () => openConversation(conv.id));
      list.append(h("li", {
        class: "conv-item" + (active ? " active" : "") + (streaming ? " streaming" : ""),
        dataset: { id: conv.id },
        "aria-current": active ? "true" : null,
      }, open, del));
    }
    ui.convEmpty.hidden = sorted.length > 0;
  }

  function svgIcon(d) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  }

  function paintAssistant(el, msg) {
    const body = el.querySelector(".msg-body");
    body.textContent = "";
    try {
      body.append(renderMarkdown(msg.content));
    } catch (_) { // a reply the renderer cannot cope with is still readable as text
      body.textContent = "";
      body.append(h("p", { class: "plain" }, msg.content));
    }
    const live = state.stream && state.stream.msg === msg;
    el.dataset.state = live ? "streaming" : msg.error ? "error" : msg.stopped ? "stopped" : "done";
    const foot = el.querySelector(".msg-foot");
    foot.textContent = "";
    if (live) {
      if (!msg.content) body.append(h("span", { class: "typing", "aria-label": "Waiting for the reply" }, h("i"), h("i"), h("i")));
      else body.append(h("span", { class: "caret", "aria-hidden": "true" }));
      return;
    }
    if (msg.error) {
      const box = h("div", { class: "msg-error", role: "alert" }, msg.error);
      if (msg.auth) {
        box.append(" ", h("a", { href: "/login" }, "Sign in again"));
      }
      foot.append(box);
    }
    const actions = h("div", { class: "msg-actions" });
    if (msg.content) actions.append(copyButton(() => msg.content), ...plugins.buttons(msg));
    if (msg.stopped) actions.append(h("span", { class: "msg-note" }, "Stopped"));
    if (msg.truncated) actions.append(h("span", { class: "msg-note" }, "Connection closed early"));
    const conv = current();
    if (conv && conv.messages[conv.messages.length - 1] === msg && !state.stream) {
      actions.append(h("button", { type: "button", class: "copy-btn", onclick: () => retry(conv) },
        msg.error || msg.stopped || msg.truncated ? "Retry" : "Regenerate"));
    }
    if (msg.model) actions.append(h("span", { class: "msg-model" }, msg.model));
    foot.append(actions);
  }

  function messageEl(msg) {
    if (msg.role === "user") {
      return h("article", { class: "msg msg-user", "data-role": "user" },
        h("div", { class: "msg-body" }, msg.content));
    }
    const el = h("article", { class: "msg msg-assistant", "data-role": "assistant" },
      h("div", { class: "msg-body md" }),
      h("div", { class: "msg-foot" }));
    paintAssistant(el, msg);
    if (state.stream && state.stream.msg === msg) state.stream.el = el;
    return el;
  }

  function renderMessages() {
    const conv = current();
    ui.messages.textContent = "";
    ui.title.textContent = conv ? conv.title : "New chat";
    document.title = conv ? conv.title + " · eldric chat" : "eldric chat";
    if (!conv || !conv.messages.length) {
      ui.messages.append(h("div", { class: "empty-state" },
        h("div", { class: "empty-mark", "aria-hidden": "true" }),
        h("h2", null, "How can I help?"),
        h("p", null, state.models.length
          ? "Ask anything. Replies stream from " + (ui.model.value || "the selected model") + "."
          : "Pick a model above, then ask anything.")));
      return;
    }
    for (const msg of conv.messages) ui.messages.append(messageEl(msg));
    scrollToEnd(true);
  }

  function nearBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToEnd(force) {
    if (force || nearBottom()) ui.scroller.scrollTop = ui.scroller.scrollHeight;
  }

  function queuePaint() {
    if (state.paintQueued) return;
    state.paintQueued = true;
    const run = () => {
      if (!state.paintQueued) return;
      state.paintQueued = false;
      const s = state.stream;
      if (!s || !s.el || !s.el.isConnected) return;
      const stick = nearBottom();
      paintAssistant(s.el, s.msg);
      if (stick) scrollToEnd(true);
    };
    requestAnimationFrame(run);
    setTimeout(run, 100); // rAF does not run in a hidden tab; the stream still shows up
  }

  function updateControls() {
    const streaming = !!state.stream;
    ui.send.hidden = streaming;
    ui.stop.hidden = !streaming;
    ui.send.disabled = streaming || !ui.prompt.value.trim() || !ui.model.value;
    document.body.classList.toggle("is-streaming", streaming);
  }

  function autosize() {
    const p = ui.prompt;
    p.style.height = "auto";
    const max = Math.max(120, Math.min(window.innerHeight * 0.4, 320));
    p.style.height = Math.min(p.scrollHeight, max) + "px";
    p.style.overflowY = p.scrollHeight > max ? "auto" : "hidden";
  }

  function openSidebar(open) {
    document.body.classList.toggle("sidebar-open", open);
    ui.scrim.hidden = !open;
    ui.menu.setAttribute("aria-expanded", String(open));
  }

  /* ---------------------------------------------------------------- actions */

  function openConversation(id) {
    setCurrent(id);
    renderSidebar();
    renderMessages();
    openSidebar(false);
    updateControls();
    if (window.matchMedia("(min-width: 801px)").matches) ui.prompt.focus();
  }

  function newChat() {
    setCurrent(null);
    renderSidebar();
    renderMessages();
    openSidebar(false);
    ui.prompt.focus();
  }

  function deleteConversation(id) {
    if (state.stream && state.stream.convId === id) state.stream.controller.abort();
    state.conversations = state.conversations.filter((c) => c.id !== id);
    if (state.currentId === id) setCurrent(null);
    persist();
    renderSidebar();
    renderMessages();
  }

  /** The message of an OpenAI-style error response ({"error": {"message": ...}}). */
  async function errorText(resp) {
    let message = "";
    try {
      const text = await resp.text();
      try {
        const body = JSON.parse(text);
        message = (body && body.error && (body.error.message || body.error)) || "";
        if (typeof message !== "string") message = JSON.stringify(message);
      } catch (_) {
        message = text.slice(0, 300).trim();
      }
    } catch (_) { /* no body */ }
    return message || resp.statusText || "request failed";
  }

  /** "try again in N s" from a reply's Retry-After (seconds or an HTTP date), or "". */
  function retryHint(resp) {
    const raw = (resp.headers.get("Retry-After") || "").trim();
    if (!raw) return "";
    let seconds = /^\d+$/.test(raw) ? Number(raw) : (Date.parse(raw) - Date.now()) / 1000;
    if (!Number.isFinite(seconds)) return "";
    seconds = Math.max(1, Math.ceil(seconds));
    return "try again in " + seconds + " s";
  }

  async function errorOf(resp) {
    const hint = retryHint(resp); // a rate limit (429) or a full cluster (503) says when
    return "Error " + resp.status + ": " + (await errorText(resp)) + (hint ? " — " + hint + "." : "");
  }

  function goToLogin() {
    if (state.authFailed) return;
    state.authFailed = true;
    setTimeout(() => window.location.assign("/login"), 1500);
  }

  async function send() {
    const text = ui.prompt.value;
    if (!text.trim() || state.stream) return;
    if (!ui.model.value) {
      notice("No model is available yet.");
      return;
    }
    let conv = current();
    if (!conv) {
      conv = { id: uid(), title: titleOf(text), created: Date.now(), updated: Date.now(), messages: [] };
      state.conversations.push(conv);
      if (state.conversations.length > MAX_CONVERSATIONS) {
        state.conversations.sort((a, b) => b.updated - a.updated).length = MAX_CONVERSATIONS;
      }
      setCurrent(conv.id);
    }
    conv.messages.push({ role: "user", content: text });
    conv.updated = Date.now();
    ui.prompt.value = "";
    autosize();
    persist();
    await complete(conv);
  }

  function retry(conv) {
    if (state.stream) return;
    const last = conv.messages[conv.messages.length - 1];
    if (last && last.role === "assistant") conv.messages.pop();
    if (!conv.messages.length) return;
    complete(conv);
  }

  async function complete(conv) {
    const model = ui.model.value;
    const history = conv.messages
      .filter((m) => m.content) // failed replies with nothing in them are not sent back
      .map((m) => ({ role: m.role, content: m.content }));
    const msg = { role: "assistant", content: "", model: model };
    conv.messages.push(msg);
    const controller = new AbortController();
    state.stream = { convId: conv.id, msg: msg, controller: controller, el: null };
    updateControls();
    renderSidebar();
    if (state.currentId === conv.id) renderMessages();

    let reader = null;
    let finished = false;
    // What the widgets hear of this reply (plugins.replied): its timing and size.
    const stats = { model: model, chunks: 0, t0: performance.now(), first: null, usage: null };
    try {
      const resp = await fetch("/v1/chat/completions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ model: model, messages: history, stream: true }),
        signal: controller.signal,
      });
      if (!resp.ok) {
        if (resp.status === 401 && !state.keyless) {
          const why = await errorText(resp);
          msg.auth = true;
          goToLogin();
          throw new Error("Your API key was not accepted (" + why + "). Taking you to the sign-in page…");
        }
        throw new Error(await errorOf(resp));
      }
      const type = resp.headers.get("Content-Type") || "";
      if (!type.includes("text/event-stream") || !resp.body) {
        // A server that ignored "stream": take the whole answer at once.
        const body = await resp.json();
        const choice = body && body.choices && body.choices[0];
        msg.content = (choice && choice.message && choice.message.content) || "";
        stats.usage = (body && body.usage) || null;
        finished = true;
      } else {
        reader = resp.body.getReader();
        const decoder = new TextDecoder();
        const parser = createSSEParser((data) => {
          if (finished) return;
          if (data.trim() === "[DONE]") { finished = true; return; }
          let chunk;
          try { chunk = JSON.parse(data); } catch (_) { return; } // not JSON: ignore
          if (chunk && chunk.error) {
            const e = chunk.error;
            throw new Error("The reply was interrupted: " +
              ((typeof e === "string" ? e : e.message) || "the stream failed"));
          }
          if (chunk && chunk.usage) stats.usage = chunk.usage;
          const choice = chunk && chunk.choices && chunk.choices[0];
          const piece = choice && choice.delta && choice.delta.content;
          if (typeof piece === "string" && piece) {
            if (stats.first === null) stats.first = performance.now();
            stats.chunks++;
            msg.content += piece;
            queuePaint();
          }
        });
        while (!finished) {
          const r = await reader.read();
          if (r.done) break;
          parser.push(decoder.decode(r.value, { stream: true }));
        }
        if (!finished) {
          parser.push(decoder.decode());
          parser.end();
        }
        if (!finished) msg.truncated = true;
      }
    } catch (e) {
      if (e && e.name === "AbortError") msg.stopped = true;
      else msg.error = (e && e.message) || String(e);
      if (msg.error && !msg.content && !msg.auth && e instanceof TypeError) {
        msg.error = "Could not reach the server: " + msg.error;
      }
    } finally {
      if (reader) reader.cancel().catch(() => {});
      state.stream = null;
      state.paintQueued = false;
      conv.updated = Date.now();
      persist();
      updateControls();
      renderSidebar();
      if (state.currentId === conv.id) {
        renderMessages();
      }
      if (msg.content && !msg.error) {
        const end = performance.now();
        plugins.replied({ model: model, content: msg.content, chunks: stats.chunks,
          ms: Math.round(end - (stats.first === null ? stats.t0 : stats.first)),
          ttft_ms: stats.first === null ? null : Math.round(stats.first - stats.t0),
          usage: stats.usage, stopped: !!msg.stopped });
      }
    }
  }

  function stop() {
    if (state.stream) state.stream.controller.abort();
  }

  async function loadModels() {
    ui.model.disabled = true;
    try {
      const resp = await fetch("/v1/models", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (resp.status === 401 && !state.keyless) {
        notice("Your API key was not accepted. Taking you to the sign-in page…");
        goToLogin();
        return;
      }
      if (!resp.ok) throw new Error(await errorOf(resp));
      const body = await resp.json();
      const ids = [];
      for (const m of (body && Array.isArray(body.data) ? body.data : [])) {
        if (m && typeof m.id === "string" && !ids.includes(m.id)) ids.push(m.id);
      }
      state.models = ids;
      ui.model.textContent = "";
      if (!ids.length) {
        ui.model.append(new Option("No models available", ""));
        notice("No models are available right now.", "Retry", loadModels);
        return;
      }
      for (const id of ids) ui.model.append(new Option(id, id));
      let saved = null;
      try { saved = localStorage.getItem(MODEL_KEY); } catch (_) { /* ignore */ }
      // The user's last choice if it is still offered; else a real model before the
      // worker's test backend (eldric-mock makes up its tokens).
      ui.model.value = saved && ids.includes(saved) ? saved
        : ids.find((id) => id !== MOCK_MODEL) || ids[0];
      ui.model.disabled = false;
      if (!current()) renderMessages();
    } catch (e) {
      ui.model.textContent = "";
      ui.model.append(new Option("Models unavailable", ""));
      notice("Could not load the model list: " + ((e && e.message) || e), "Retry", loadModels);
    } finally {
      updateControls();
    }
  }

  /* -------------------------------------------------------------------- start */

  function init() {
    Object.assign(ui, {
      convList: $("conv-list"), convEmpty: $("conv-empty"), messages: $("messages"),
      scroller: $("scroller"), title: $("conv-title"), model: $("model"), prompt: $("prompt"),
      send: $("send"), stop: $("stop"), composer: $("composer"), menu: $("menu"),
      scrim: $("scrim"), notice: $("notice"), noticeText: $("notice-text"),
      noticeAction: $("notice-action"),
    });
    state.keyless = document.body.hasAttribute("data-keyless");
    state.conversations = loadConversations();
    let saved = null;
    try { saved = localStorage.getItem(CURRENT_KEY); } catch (_) { /* ignore */ }
    state.currentId = state.conversations.some((c) => c.id === saved) ? saved : null;

    ui.composer.addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
    ui.prompt.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        send();
      }
    });
    ui.prompt.addEventListener("input", () => { autosize(); updateControls(); });
    ui.stop.addEventListener("click", stop);
    ui.model.addEventListener("change", () => {
      try { localStorage.setItem(MODEL_KEY, ui.model.value); } catch (_) { /* ignore */ }
      updateControls();
      if (!current()) renderMessages();
    });
    $("new-chat").addEventListener("click", newChat);
    ui.menu.addEventListener("click", () => openSidebar(!document.body.classList.contains("sidebar-open")));
    $("close-sidebar").addEventListener("click", () => openSidebar(false));
    ui.scrim.addEventListener("click", () => openSidebar(false));
    document.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape") return;
      if (state.stream) stop();
      else openSidebar(false);
    });
    window.addEventListener("storage", (ev) => { // another tab changed the history
      if (ev.key !== STORE_KEY || state.stream) return;
      state.conversations = loadConversations();
      if (!current()) state.currentId = null;
      renderSidebar();
      renderMessages();
    });
    window.addEventListener("resize", autosize);

    renderSidebar();
    renderMessages();
    autosize();
    updateControls();
    loadModels();
    plugins.onChange(() => { if (!state.stream) renderMessages(); });
    plugins.load($("widgets"));
    if (window.matchMedia("(min-width: 801px)").matches) ui.prompt.focus();
  }

  // For tests and the curious: the pure parts, usable from the console.
  window.EldricChat = Object.freeze({ createSSEParser: createSSEParser, renderMarkdown: renderMarkdown });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
