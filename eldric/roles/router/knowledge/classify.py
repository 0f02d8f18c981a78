"""The keyword scorer: which themes a prompt's words and phrases name, in microseconds.

Every keyword of every theme is indexed once as its words (lower-cased, a plural's `s`
and a possessive's `'s` dropped, so "tumors" finds "tumor"). A prompt is cut into words
by one regular expression (in C) and scanned once: each word is looked up alone and,
only when some phrase starts with it, joined with the next ones (up to the longest
phrase). That is Aho-Corasick's result for whole-word phrases with dict lookups instead
of an automaton, and no model.

A phrase scores its length in words (a two-word phrase says more than one word), split
among the themes that share it; each phrase counts once per prompt. On a tie the more
specific theme (deeper under its parents) goes first, then the one first in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from eldric.roles.router.knowledge.themes import Theme

# a run of word characters and the signs inside names (node.js, c++, ci/cd); the signs
# around a word ("high.", "'quoted'") are stripped by _stem, cached (half the regex's cost
# of excluding them here)
_WORD = re.compile(r"[a-z0-9+#'.\-/&]+")
_AROUND = "'.-/&"


# lru_cache (in C): a word stemmed once is a dict hit after; bounded, whatever clients send
@lru_cache(maxsize=1 << 16)
def _stem(w: str) -> str:
    """A light stemmer, the same for keywords and prompts: plural, possessive, -ing,
    -ed and British -ise forms meet their keyword ("volcanoes", "procrastinating",
    "visualise"). Words it merges by mistake are merged on both sides alike."""
    w = w.strip(_AROUND)
    if w.endswith("'s"):
        w = w[:-2]
    if not w.replace("'", "").replace("-", "").isalnum():
        return w  # a name with signs in it (node.js, c++, ci/cd) is taken as written
    n = len(w)
    if n > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if n > 4 and w.endswith("oes"):
        return w[:-2]
    if n > 6 and w.endswith("ing"):
        w, n = w[:-3], n - 3
    elif n > 5 and w.endswith("ed") and not w.endswith("eed"):
        w, n = w[:-2], n - 2
    elif n > 3 and w[-1] == "s" and w[-2] not in "siu'":
        w, n = w[:-1], n - 1
    if n > 4 and (w.endswith("is") or w.endswith("iz")):  # -ise(d)/-ize(d) lose the e
        w = w[:-2] + "iz"
    elif n > 4 and (w.endswith("ise") or w.endswith("ize")):
        w = w[:-3] + "iz"
    return w


def words(text: str) -> list[str]:
    return [w for w in map(_stem, _WORD.findall(text.lower())) if w]


@dataclass(slots=True)
class Score:
    theme: Theme
    score: float
    matched: list[str] = field(default_factory=list)


class KeywordScorer:
    __slots__ = ("themes", "depth", "phrases", "longest")

    def __init__(self, themes: list[Theme]) -> None:
        self.themes = themes
        by_id = {t.id: t for t in themes}
        self.depth = [_depth(t, by_id) for t in themes]
        owners: dict[str, set[int]] = {}
        for i, t in enumerate(themes):
            for k in t.keywords:
                owners.setdefault(" ".join(words(k)), set()).add(i)
        # phrase -> ((theme index, weight), ...)
        self.phrases: dict[str, tuple[tuple[int, float], ...]] = {
            p: tuple((i, (p.count(" ") + 1) / len(who)) for i in sorted(who))
            for p, who in owners.items()}
        # first word of a phrase of 2+ words -> the most words such a phrase has
        self.longest: dict[str, int] = {}
        for p in self.phrases:
            if " " in p:
                ws = p.split(" ")
                self.longest[ws[0]] = max(self.longest.get(ws[0], 1), len(ws))

    def score(self, text: str, top_k: int) -> list[Score]:
        """The best `top_k` themes the text names (score > 0), best first."""
        ws = words(text)
        phrases, longest = self.phrases, self.longest
        found: set[str] = set()
        n = len(ws)
        for i, w in enumerate(ws):
            if w in phrases:
                found.add(w)
            most = longest.get(w)
            if most is not None:
                for k in range(2, min(most, n - i) + 1):
                    p = " ".join(ws[i:i + k])
                    if p in phrases:
                        found.add(p)
        if not found:
            return []
        totals: dict[int, float] = {}
        for p in found:
            for i, weight in phrases[p]:
                totals[i] = totals.get(i, 0.0) + weight
        depth = self.depth
        # ties: the more specific theme, then the one first in the file (never the hash order)
        best = sorted(totals, key=lambda i: (-totals[i], -depth[i], i))[:top_k]
        out = []
        for i in best:
            matched = sorted(p for p in found if any(j == i for j, _ in phrases[p]))
            out.append(Score(self.themes[i], round(totals[i], 3), matched))
        return out


def _depth(t: Theme, by_id: dict[str, Theme]) -> int:
    d = 0
    while t.parent is not None:
        t = by_id[t.parent]
        d += 1
    return d
