/* eldric chat: a tiny syntax highlighter for fenced code (used by markdown.js).
 * It only ever adds text nodes inside <span class="tok-…"> elements. */
(function () {
  "use strict";

  function token(cls, text) {
    const span = document.createElement("span");
    span.className = "tok-" + cls;
    span.textContent = text;
    return span;
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
      el.append(token(cls, s));
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

  window.EldricHighlight = Object.freeze({ highlight: highlight });
})();
