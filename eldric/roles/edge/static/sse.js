/* eldric chat: the incremental Server-Sent Events parser (used by chat.js). */
(function () {
  "use strict";

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

  window.EldricSSE = Object.freeze({ createSSEParser: createSSEParser });
})();
