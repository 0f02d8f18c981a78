/* A widget: the last reply's speed. Tokens are the reply's usage when the server sent
 * it, else its streamed chunks (one token each, as servers stream); the time is from the
 * first token to the last, so the prompt's processing is not counted as generation. */
(function () {
  "use strict";
  let out = null;
  window.eldric.registerWidget({
    id: "tokens-per-second",
    title: "Tokens per second",
    mount: (el) => {
      out = document.createElement("span");
      out.className = "tps";
      out.textContent = "–";
      el.append(out);
    },
    onReply: (stats) => {
      const tokens = (stats.usage && stats.usage.completion_tokens) || stats.chunks;
      const seconds = stats.ms / 1000;
      if (!tokens || seconds <= 0) { out.textContent = tokens + " tokens"; return; }
      out.textContent = (tokens / seconds).toFixed(1) + " tok/s (" + tokens + " tokens)";
      out.dataset.tokens = String(tokens);
    },
  });
})();
