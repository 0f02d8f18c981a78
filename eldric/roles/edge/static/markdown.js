/* eldric chat: Markdown -> DOM, and the DOM helper the page shares.
 *
 * Safety rule: text from the model, the user or the server only ever enters the page as
 * text nodes. The renderer builds elements one by one; nothing here assigns innerHTML.
 */
(function () {
  "use strict";

  const { highlight } = window.EldricHighlight; // highlight.js, loaded before this file

  /* ------------------------------------------------------------------ DOM helper */

  function h(tag, attrs) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const key of Object.keys(attrs)) {
        const v = attrs[key];
        if (v === null || v === undefined || v === false) continue;
        if (key === "class") el.className = v;
        else if (key === "dataset") Object.assign(el.dataset, v);
        else if (key.startsWith("on")) el.addEventListener(key.slice(2), v);
        else el.setAttribute(key, v === true ? "" : String(v));
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c !== null && c !== undefined && c !== false) el.append(c); // strings become text nodes
    }
    return el;
  }

  /* ------------------------------------------------------------- Markdown → DOM */

  function safeUrl(raw) {
    try {
      const u = new URL(raw.trim());
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (_) {
      return null;
    }
  }

  function link(href, children) {
    const a = h("a", { href: href, target: "_blank", rel: "noopener noreferrer" });
    for (const c of children) a.append(c);
    return a;
  }

  const ESCAPABLE = "\\`*_{}[]()#+-.!|~<>\"'";
  const isWordChar = (c) => !!c && /[\p{L}\p{N}]/u.test(c);
  const isSpace = (c) => !c || /\s/.test(c);

  /** Find where a delimiter run closes, starting at `from`; skips code spans. */
  function findClose(text, delim, from, wordRule) {
    let j = from;
    while (j < text.length) {
      const c = text[j];
      if (c === "\\") { j += 2; continue; }
      if (c === "`") {
        let run = 1;
        while (text[j + run] === "`") run++;
        const end = findBackticks(text, run, j + run);
        j = end < 0 ? j + run : end + run;
        continue;
      }
      if (text.startsWith(delim, j) && j > from && !isSpace(text[j - 1])) {
        if (delim.length === 1 && text[j + 1] === delim) { // part of a double run: skip it
          j += 2;
          continue;
        }
        if (!wordRule || !isWordChar(text[j + delim.length])) return j;
      }
      j++;
    }
    return -1;
  }

  function findBackticks(text, run, from) {
    let j = from;
    while (j < text.length) {
      j = text.indexOf("`", j);
      if (j < 0) return -1;
      let r = 1;
      while (text[j + r] === "`") r++;
      if (r === run) return j;
      j += r;
    }
    return -1;
  }

  /** For every "[" in text, the index of the "]" closing it (nesting and escapes
   *  honoured), found in one pass; -1 when it never closes. */
  function bracketPairs(text) {
    const pairs = new Map();
    const stack = [];
    for (let j = 0; j < text.length; j++) {
      const c = text[j];
      if (c === "\\") { j++; continue; }
      if (c === "[") stack.push(j);
      else if (c === "]" && stack.length) pairs.set(stack.pop(), j);
    }
    return pairs;
  }

  /** Parse "(url "title")" at text[at] === "("; returns [url, endIndex] or null. */
  function linkTarget(text, at) {
    let j = at + 1;
    while (text[j] === " ") j++;
    let url = "";
    if (text[j] === "<") {
      const end = text.indexOf(">", j);
      if (end < 0) return null;
      url = text.slice(j + 1, end);
      j = end + 1;
    } else {
      let depth = 0;
      const s = j;
      for (; j < text.length; j++) {
        const c = text[j];
        if (c === "\\") { j++; continue; }
        if (/\s/.test(c)) break;
        if (c === "(") depth++;
        else if (c === ")") { if (depth === 0) break; depth--; }
      }
      url = text.slice(s, j);
    }
    while (text[j] === " ") j++;
    if (text[j] === '"' || text[j] === "'") { // a title: accepted and ignored
      const end = text.indexOf(text[j], j + 1);
      if (end < 0) return null;
      j = end + 1;
      while (text[j] === " ") j++;
    }
    if (text[j] !== ")") return null;
    return [url, j + 1];
  }

  const AUTOLINK = /^https?:\/\/[^\s<>"'`]+/i;

  function trimAutolink(url) {
    // Trailing punctuation belongs to the sentence, an unbalanced ")" to the text around it.
    for (;;) {
      const last = url[url.length - 1];
      if (".,:;!?*_'\"".includes(last)) url = url.slice(0, -1);
      else if (last === ")" && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
      else return url;
    }
  }

  const MAX_NESTING = 24; // deeper than this, the rest is shown as plain text
  let inlineDepth = 0;
  let blockDepth = 0;

  /** Inline Markdown into `parent`: code spans, links, autolinks, bold, italic,
   *  strikethrough, hard line breaks. Everything else is text. */
  function inline(text, parent) {
    if (inlineDepth >= MAX_NESTING) {
      parent.append(text);
      return;
    }
    inlineDepth++;
    try {
      inlineInto(text, parent);
    } finally {
      inlineDepth--;
    }
  }

  function inlineInto(text, parent) {
    const noCloseAfter = {};
    let pairs = null;
    let buf = "";
    const flush = () => { if (buf) { parent.append(buf); buf = ""; } };
    const put = (node) => { flush(); parent.append(node); };
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
        buf += text[i + 1];
        i += 2;
        continue;
      }
      if (c === "\n") {
        put(h("br"));
        i++;
        continue;
      }
      if (c === "`") {
        let run = 1;
        while (text[i + run] === "`") run++;
        const end = findBackticks(text, run, i + run);
        if (end >= 0) {
          let code = text.slice(i + run, end).replace(/\n/g, " ");
          if (code.length > 2 && code[0] === " " && code[code.length - 1] === " " && code.trim()) code = code.slice(1, -1);
          put(h("code", null, code));
          i = end + run;
        } else {
          buf += text.slice(i, i + run);
          i += run;
        }
        continue;
      }
      if (c === "[") {
        if (!pairs) pairs = bracketPairs(text);
        const close = pairs.has(i) ? pairs.get(i) : -1;
        if (close > 0 && text[close + 1] === "(") {
          const target = linkTarget(text, close + 1);
          if (target) {
            const href = safeUrl(target[0]);
            if (href) {
              const label = document.createDocumentFragment();
              inline(text.slice(i + 1, close), label);
              put(link(href, [label]));
            } else {
              buf += text.slice(i, target[1]); // not http(s): shown as written, never linked
            }
            i = target[1];
            continue;
          }
        }
      }
      if (c === "<") {
        const m = /^<(https?:\/\/[^\s<>]+)>/i.exec(text.slice(i, i + 2048));
        const href = m && safeUrl(m[1]);
        if (href) {
          put(link(href, [m[1]]));
          i += m[0].length;
          continue;
        }
      }
      if ((c === "h" || c === "H") && !isWordChar(text[i - 1]) && text[i - 1] !== "/") {
        const m = AUTOLINK.exec(text.slice(i, i + 2048));
        if (m) {
          const url = trimAutolink(m[0]);
          const href = safeUrl(url);
          if (href) {
            put(link(href, [url]));
            i += url.length;
            continue;
          }
        }
      }
      if (c === "*" || c === "_" || c === "~") {
        const wordRule = c === "_";
        const canOpen = !(wordRule && isWordChar(text[i - 1]));
        if (canOpen) {
          let done = false;
          const tries = c === "~" ? [["~~", "del"]]
            : [[c + c + c, "strong-em"], [c + c, "strong"], [c, "em"]];
          for (const [delim, kind] of tries) {
            if (!text.startsWith(delim, i) || isSpace(text[i + delim.length])) continue;
            // Once a delimiter has no closer after some point, later openers have none
            // either: remembering that keeps a reply full of lone "*" linear, not quadratic.
            if (i >= (noCloseAfter[delim] ?? Infinity)) continue;
            const end = findClose(text, delim, i + delim.length, wordRule);
            if (end < 0) { noCloseAfter[delim] = i; continue; }
            const inner = text.slice(i + delim.length, end);
            let node;
            if (kind === "strong-em") {
              const em = h("em");
              inline(inner, em);
              node = h("strong", null, em);
            } else {
              node = h(kind);
              inline(inner, node);
            }
            put(node);
            i = end + delim.length;
            done = true;
            break;
          }
          if (done) continue;
        }
        // An unmatched run is literal text.
        let run = 1;
        while (text[i + run] === c) run++;
        buf += text.slice(i, i + run);
        i += run;
        continue;
      }
      buf += c;
      i++;
    }
    flush();
  }

  /* ---------------------------------------------------------------- copy helper */

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (_) { /* fall back below */ }
    }
    const ta = h("textarea", { readonly: true, class: "copy-buffer", "aria-hidden": "true" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    ta.remove();
    return ok;
  }

  function copyButton(getText, label) {
    const btn = h("button", { type: "button", class: "copy-btn", title: "Copy" }, label || "Copy");
    btn.addEventListener("click", async () => {
      const ok = await copyText(getText());
      btn.textContent = ok ? "Copied" : "Copy failed";
      btn.classList.toggle("done", ok);
      setTimeout(() => { btn.textContent = label || "Copy"; btn.classList.remove("done"); }, 1400);
    });
    return btn;
  }

  /* --------------------------------------------------------------- block Markdown */

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*$/;
  const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const LIST = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
  const TABLE_SEP = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;

  function isTableStart(lines, i) {
    return lines[i].includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) &&
      (lines[i + 1].includes("|") || lines[i].trim().startsWith("|"));
  }

  function startsBlock(lines, i) {
    const l = lines[i];
    return FENCE.test(l) || HEADING.test(l) || HR.test(l) || QUOTE.test(l) ||
      (LIST.test(l) && LIST.exec(l)[3] !== undefined) || isTableStart(lines, i);
  }

  function codeBlock(code, lang) {
    const codeEl = h("code", lang ? { "data-lang": lang } : null);
    highlight(code, lang, codeEl);
    return h("div", { class: "code-block" },
      h("div", { class: "code-head" },
        h("span", { class: "code-lang" }, lang || "code"),
        copyButton(() => code)),
      h("pre", null, codeEl));
  }

  function splitRow(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    const cells = [];
    let cur = "";
    let inCode = false;
    for (let j = 0; j < s.length; j++) {
      const c = s[j];
      if (c === "\\" && s[j + 1] === "|") { cur += "|"; j++; continue; }
      if (c === "`") inCode = !inCode;
      if (c === "|" && !inCode) { cells.push(cur.trim()); cur = ""; continue; }
      cur += c;
    }
    cells.push(cur.trim());
    return cells;
  }

  function table(lines, i, out) {
    const head = splitRow(lines[i]);
    const aligns = splitRow(lines[i + 1]).map((c) =>
      c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : null);
    const row = (cells, tag) => {
      const tr = h("tr");
      for (let k = 0; k < head.length; k++) {
        const cell = h(tag, aligns[k] ? { style: "text-align:" + aligns[k] } : null);
        inline(cells[k] || "", cell);
        tr.append(cell);
      }
      return tr;
    };
    const thead = h("thead", null, row(head, "th"));
    const tbody = h("tbody");
    i += 2;
    while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
      tbody.append(row(splitRow(lines[i]), "td"));
      i++;
    }
    out.append(h("div", { class: "table-wrap" }, h("table", null, thead, tbody)));
    return i;
  }

  function list(lines, i, out) {
    const first = LIST.exec(lines[i]);
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    const el = h(ordered ? "ol" : "ul");
    if (ordered) {
      const start = parseInt(first[2], 10);
      if (start !== 1) el.setAttribute("start", String(start));
    }
    let loose = false;
    while (i < lines.length) {
      const m = LIST.exec(lines[i]);
      if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
      const contentIndent = indent + m[2].length + 1;
      const body = [m[3] || ""];
      i++;
      let blank = false;
      while (i < lines.length) {
        const l = lines[i];
        if (!l.trim()) { blank = true; body.push(""); i++; continue; }
        const lead = l.length - l.trimStart().length;
        if (lead > indent) { // continuation or a nested block
          body.push(l.slice(Math.min(lead, contentIndent)));
          blank = false;
          i++;
          continue;
        }
        if (!blank && !LIST.test(l) && !startsBlock(lines, i)) { // lazy continuation
          body.push(l.trim());
          i++;
          continue;
        }
        break;
      }
      while (body.length && !body[body.length - 1].trim()) { body.pop(); loose = loose || blank; }
      if (body.some((l) => !l.trim())) loose = true;
      const li = h("li");
      blocks(body, li);
      el.append(li);
      if (i < lines.length && !lines[i].trim()) i++;
    }
    if (!loose) el.classList.add("tight");
    out.append(el);
    return i;
  }

  function blocks(lines, out) {
    if (blockDepth >= MAX_NESTING) {
      out.append(h("p", null, lines.join("\n")));
      return;
    }
    blockDepth++;
    try {
      blocksInto(lines, out);
    } finally {
      blockDepth--;
    }
  }

  function blocksInto(lines, out) {
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) { i++; continue; }
      let m = FENCE.exec(line);
      if (m) {
        const fence = m[1];
        const closing = new RegExp("^ {0,3}" + (fence[0] === "`" ? "`" : "~") + "{" + fence.length + ",}\\s*$");
        const body = [];
        i++;
        while (i < lines.length && !closing.test(lines[i])) body.push(lines[i++]);
        i++; // the closing fence (or the end, while it is still streaming)
        out.append(codeBlock(body.join("\n"), m[2]));
        continue;
      }
      if (HR.test(line)) { out.append(h("hr")); i++; continue; }
      m = HEADING.exec(line);
      if (m) {
        const hd = h("h" + Math.min(m[1].length + 1, 6), { class: "md-h" + m[1].length });
        inline(m[2] || "", hd);
        out.append(hd);
        i++;
        continue;
      }
      if (QUOTE.test(line)) {
        const inner = [];
        while (i < lines.length && lines[i].trim()) {
          const q = QUOTE.exec(lines[i]);
          inner.push(q ? q[1] : lines[i]);
          i++;
        }
        const bq = h("blockquote");
        blocks(inner, bq);
        out.append(bq);
        continue;
      }
      m = LIST.exec(line);
      if (m && m[3] !== undefined) { i = list(lines, i, out); continue; }
      if (isTableStart(lines, i)) { i = table(lines, i, out); continue; }
      const para = [line.trim()];
      i++;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) para.push(lines[i++].trim());
      const p = h("p");
      inline(para.join("\n"), p);
      out.append(p);
    }
  }

  /** Markdown text → a DocumentFragment made of elements and text nodes only. */
  function renderMarkdown(src) {
    const frag = document.createDocumentFragment();
    const lines = String(src).replace(/\r\n?/g, "\n").replace(/\t/g, "    ").split("\n");
    blocks(lines, frag);
    return frag;
  }

  window.EldricMarkdown = Object.freeze({ h: h, copyButton: copyButton, renderMarkdown: renderMarkdown });
})();
