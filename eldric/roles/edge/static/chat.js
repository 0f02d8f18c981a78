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

  /* ------------------------------------------------------------ SSE stream parser */

  /** An incremental Server-Sent Events parser: feed it text in pieces split anywhere
   *  (even between "\r" and "\n"); it calls onData(data) once per complete event. */
  function createSSEParser(onData) {
    let buf = "";
    let data = [];
    function line(l) {
      if (l === "") {
        if (data.length) {
          const d = data.join("\n");
          data = [];
          onData(d);
        }
        return;
      }
      if (l[0] === ":") return; // comment / keep-alive
      const colon = l.indexOf(":");
      const field = colon < 0 ? l : l.slice(0, colon);
      let value = colon < 0 ? "" : l.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "data") data.push(value);
      // "event", "id" and "retry" are not used by the OpenAI stream.
    }
    function drain(final) {
      let start = 0;
      for (;;) {
        let i = start;
        while (i < buf.length && buf[i] !== "\n" && buf[i] !== "\r") i++;
        if (i >= buf.length) break;
        if (buf[i] === "\r" && i + 1 >= buf.length && !final) break; // wait: "\r\n" may be split
        const next = buf[i] === "\r" && buf[i + 1] === "\n" ? i + 2 : i + 1;
        const l = buf.slice(start, i);
        start = next;
        line(l);
      }
      buf = buf.slice(start);
    }
    return {
      push(text) {
        buf += text;
        drain(false);
      },
      end() {
        drain(true);
        if (buf) line(buf);
        buf = "";
        line(""); // a last event without its blank line still counts
      },
    };
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

  /* ----------------------------------------------------------- tiny highlighter */

  const WORDS = (s) => new Set(s.split(/\s+/));
  const C_LIKE_LIT = "true false null";
  const LANGS = {
    js: {
      kw: "async await break case catch class const continue debugger default delete do else export extends finally for from function if import in instanceof let new of return static super switch this throw try typeof var void while with yield type interface enum implements private public protected readonly as",
      lit: "true false null undefined NaN Infinity", line: "//", block: true, str: "'\"`",
    },
    py: {
      kw: "and as assert async await break class continue def del elif else except finally for from global if import in is lambda match case nonlocal not or pass raise return try while with yield self",
      lit: "None True False", line: "#", block: false, str: "'\"", triple: true,
    },
    sh: {
      kw: "if then else elif fi for in do done while until case esac function return local export readonly set unset source echo exit cd sudo",
      lit: "true false", line: "#", block: false, str: "'\"",
    },
    go: {
      kw: "break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var",
      lit: "true false nil iota", line: "//", block: true, str: "'\"`",
    },
    rust: {
      kw: "as async await break const continue crate dyn else enum extern fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait type unsafe use where while",
      lit: "true false None Some Ok Err", line: "//", block: true, str: "\"",
    },
    c: {
      kw: "auto break case catch char class const constexpr continue default delete do double else enum extern final float for goto if inline int long namespace new override private protected public register return short signed sizeof static struct switch template this throw try typedef typename union unsigned using virtual void volatile while abstract boolean byte extends implements import instanceof interface package super synchronized throws var val fun when object string bool",
      lit: C_LIKE_LIT + " nullptr NULL", line: "//", block: true, str: "'\"",
    },
    sql: {
      kw: "select from where and or not insert into values update set delete create table drop alter index join left right inner outer on group by order having limit offset as distinct union all primary key references default null is in like between case when then else end",
      lit: "true false", line: "--", block: true, str: "'\"", ci: true,
    },
    json: { kw: "", lit: C_LIKE_LIT, line: null, block: false, str: "\"" },
  };
  const ALIASES = {
    js: "js", javascript: "js", jsx: "js", ts: "js", typescript: "js", tsx: "js", mjs: "js", node: "js",
    py: "py", python: "py", python3: "py",
    sh: "sh", bash: "sh", shell: "sh", zsh: "sh", console: "sh",
    go: "go", golang: "go",
    rs: "rust", rust: "rust",
    c: "c", h: "c", cpp: "c", "c++": "c", cc: "c", hpp: "c", java: "c", kotlin: "c", kt: "c",
    cs: "c", csharp: "c", swift: "c", scala: "c", php: "c",
    sql: "sql", postgres: "sql", postgresql: "sql", sqlite: "sql", mysql: "sql",
    json: "json", jsonc: "js",
  };
  const compiled = {};

  function compile(name) {
    const spec = LANGS[name];
    const parts = [];
    const comment = [];
    if (spec.block) comment.push("\\/\\*[\\s\\S]*?(?:\\*\\/|$)");
    if (spec.line) comment.push(spec.line.replace(/[/]/g, "\\/") + "[^\\n]*");
    parts.push(comment.length ? "(" + comment.join("|") + ")" : "()(?!)");
    const strs = [];
    if (spec.triple) strs.push('"""[\\s\\S]*?(?:"""|$)', "'''[\\s\\S]*?(?:'''|$)");
    for (const q of spec.str) {
      const e = q === "`" ? "`" : q;
      strs.push(e + "(?:\\\\[\\s\\S]|[^\\\\" + e + (q === "`" ? "" : "\\n") + "])*" + e);
    }
    parts.push("(" + strs.join("|") + ")");
    parts.push("(\\b(?:0[xX][\\da-fA-F_]+|\\d[\\d_]*(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)\\b)");
    parts.push("([A-Za-z_$][\\w$]*)");
    const ci = !!spec.ci;
    const norm = (s) => (ci ? s.toLowerCase() : s);
    return {
      re: new RegExp(parts.join("|"), "g"),
      kw: WORDS(norm(spec.kw)),
      lit: WORDS(norm(spec.lit)),
      norm: norm,
      lineComment: spec.line,
    };
  }

  function highlight(code, lang, el) {
    const name = ALIASES[(lang || "").toLowerCase()];
    if (!name) {
      el.textContent = code;
      return;
    }
    const spec = compiled[name] || (compiled[name] = compile(name));
    const re = spec.re;
    re.lastIndex = 0;
    let last = 0;
    let plain = "";
    let m;
    const span = (cls, s) => {
      if (plain) { el.append(plain); plain = ""; }
      el.append(h("span", { class: "tok-" + cls }, s));
    };
    while ((m = re.exec(code))) {
      if (m[0] === "") { re.lastIndex++; continue; }
      plain += code.slice(last, m.index);
      if (m[1]) {
        // "#" starts a comment in shell only at a word start ($# and a#b are not comments)
        if (spec.lineComment === "#" && name === "sh" && m.index > 0 && !/\s/.test(code[m.index - 1])) {
          plain += "#";
          re.lastIndex = m.index + 1;
          last = re.lastIndex;
          continue;
        }
        span("c", m[0]);
      } else if (m[2]) span("s", m[2]);
      else if (m[3]) span("n", m[3]);
      else if (m[4]) {
        const w = spec.norm(m[4]);
        if (spec.kw.has(w)) span("k", m[0]);
        else if (spec.lit.has(w)) span("l", m[0]);
        else if (code[re.lastIndex] === "(") span("f", m[0]);
        else plain += m[0];
      }
      last = re.lastIndex;
    }
    plain += code.slice(last);
    if (plain) el.append(plain);
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
    if (msg.content) actions.append(copyButton(() => msg.content));
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

  async function errorOf(resp) {
    return "Error " + resp.status + ": " + (await errorText(resp));
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
    try {
      const resp = await fetch("/v1/chat/completions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ model: model, messages: history, stream: true }),
        signal: controller.signal,
      });
      if (!resp.ok) {
        if (resp.status === 401) {
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
          const choice = chunk && chunk.choices && chunk.choices[0];
          const piece = choice && choice.delta && choice.delta.content;
          if (typeof piece === "string" && piece) {
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
    }
  }

  function stop() {
    if (state.stream) state.stream.controller.abort();
  }

  async function loadModels() {
    ui.model.disabled = true;
    try {
      const resp = await fetch("/v1/models", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (resp.status === 401) {
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
      ui.model.value = saved && ids.includes(saved) ? saved : ids[0];
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
    if (window.matchMedia("(min-width: 801px)").matches) ui.prompt.focus();
  }

  // For tests and the curious: the pure parts, usable from the console.
  window.EldricChat = Object.freeze({ createSSEParser: createSSEParser, renderMarkdown: renderMarkdown });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
