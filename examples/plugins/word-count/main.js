/* An action: a "Word count" button on each reply; the count is shown beside it. */
(function () {
  "use strict";
  function count(text) {
    const words = text.trim().split(/\s+/).filter(Boolean);
    return words.length;
  }
  window.eldric.registerAction({
    id: "word-count",
    label: "Word count",
    run: (reply) => {
      const n = count(reply.content);
      return n + (n === 1 ? " word" : " words");
    },
  });
})();
