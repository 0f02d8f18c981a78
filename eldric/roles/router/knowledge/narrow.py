"""Knowledge routing's Narrower: the prompt's theme picks the workers tagged with it.

The classified text is the last user turn and the system prompt, cut to `max_chars`.
The keyword scorer ranks the themes it names; the embedding scorer, when configured, is
asked only when none reaches the threshold and some candidate is tagged theme:<id> at
all (otherwise its answer could change nothing). For the best `top_k` themes in turn,
the theme and then its parents are looked for among the candidates' tags: the first
found narrows them to those workers, and the strategy picks among them. No theme, or no
worker tagged with one: the candidates stay as they are (standard balancing). The reply
says what happened in X-Eldric-Theme and X-Eldric-Theme-Reason, and /metrics counts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from eldric import keys
from eldric.bus import lite
from eldric.roles.router.context import RouteContext, last_user, text_of
from eldric.roles.router.knowledge.classify import KeywordScorer
from eldric.roles.router.knowledge.config import KnowledgeConfig
from eldric.roles.router.knowledge.embed import EmbeddingScorer
from eldric.roles.router.knowledge.themes import Theme
from eldric.roles.router.pool import Worker

TAG = "theme:"
_NOT_CLASSIFIED = "/v1/embeddings"  # the embedding scorer's own calls may come here


@dataclass(slots=True)
class Ranked:
    theme: Theme
    score: float
    matched: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Verdict:
    themes: list[Ranked]  # above the threshold, best first (empty: no theme)
    scorer: str | None  # "keywords" | "embeddings"
    best: list[Ranked]  # the best below or above the threshold (what the API shows)
    note: str = ""  # why there is no theme


def theme_text(doc: dict[str, Any] | None, limit: int) -> str:
    """The last user turn, then the system prompt, `limit` characters in all."""
    if not doc:
        return ""
    user = last_user(doc, limit)
    system = doc.get("system") or doc.get("instructions")
    if system is None and isinstance(doc.get("messages"), list):
        system = next((m.get("content") for m in doc["messages"]
                       if isinstance(m, dict) and m.get("role") == "system"), None)
    room = limit - len(user)
    if system is None or room <= 1:
        return user
    return f"{user}\n{text_of(system)[:room - 1]}"


class Knowledge:
    """The themes, both scorers and the counts (app[KNOWLEDGE]); thinking.knowledge when
    knowledge routing is on."""

    def __init__(self, app: web.Application, cfg: KnowledgeConfig, themes: list[Theme],
                 source: str) -> None:
        self.app = app
        self.cfg = cfg
        self.themes = themes
        self.source = source
        self.by_id = {t.id: t for t in themes}
        self.keywords = KeywordScorer(themes)
        self.embeddings = EmbeddingScorer(cfg, themes) if cfg.embeddings_model else None
        # theme id -> the tags that take its prompts: its own, then its parents'
        self.tags: dict[str, tuple[str, ...]] = {t.id: self._chain(t) for t in themes}
        registry = app[keys.BUS].metrics.registry
        # labels bounded by the themes file (at most 2000 themes) and three outcomes
        self.requests = lite.Counter(
            "eldric_router_theme_requests_total",
            "Requests classified by knowledge routing, by theme (none: below threshold) "
            "and outcome (narrowed, untagged: no worker tagged, unmatched)",
            ["theme", "outcome"], registry=registry)
        self.embedding_calls = lite.Counter(
            "eldric_router_theme_embeddings_total",
            "Embedding scorer calls by outcome (ok, timeout, error, not_ready)",
            ["outcome"], registry=registry)

    def _chain(self, t: Theme) -> tuple[str, ...]:
        out = [TAG + t.id]
        while t.parent is not None:
            t = self.by_id[t.parent]
            out.append(TAG + t.id)
        return tuple(out)

    async def classify(self, text: str, embeddings: bool = True) -> Verdict:
        cfg = self.cfg
        best = [Ranked(s.theme, s.score, s.matched) for s in self.keywords.score(text, cfg.top_k)]
        passing = [r for r in best if r.score >= cfg.threshold]
        if passing:
            return Verdict(passing, "keywords", best)
        note = (f"keywords: best {best[0].theme.id} {best[0].score} < {cfg.threshold}" if best
                else "keywords: no theme named")
        if self.embeddings is None or not embeddings or not text:
            return Verdict([], None, best, note)
        got = await self.embeddings.score(self.app[keys.SESSION], text, cfg.top_k)
        if isinstance(got, str):
            self.embedding_calls.labels(got).inc()
            return Verdict([], None, best, f"{note}; embeddings: {got}")
        self.embedding_calls.labels("ok").inc()
        near = [Ranked(t, s) for t, s in got]
        passing = [r for r in near if r.score >= cfg.embeddings_threshold]
        if passing:
            return Verdict(passing, "embeddings", near)
        return Verdict([], None, best or near, f"{note}; embeddings: best {near[0].theme.id} "
                       f"{near[0].score} < {cfg.embeddings_threshold}" if near else note)

    def pick(self, verdict: Verdict, candidates: list[Worker]) -> tuple[str | None, list[Worker]]:
        """The tag that narrows and the workers carrying it (None: none is carried)."""
        for r in verdict.themes:
            for tag in self.tags[r.theme.id]:
                tagged = [w for w in candidates if tag in w.tags]
                if tagged:
                    return tag, tagged
        return None, candidates

    async def narrow(self, candidates: list[Worker], ctx: RouteContext) -> list[Worker]:
        if ctx.path == _NOT_CLASSIFIED:
            return candidates
        text = theme_text(ctx.document(), self.cfg.max_chars)
        specialised = any(t.startswith(TAG) for w in candidates for t in w.tags)
        verdict = await self.classify(text, embeddings=specialised)
        if not verdict.themes:
            self.requests.labels("none", "unmatched").inc()
            ctx.add_header("X-Eldric-Theme-Reason", f"no theme: {verdict.note}")
            return candidates
        top = verdict.themes[0]
        ctx.theme = top.theme.id
        ctx.add_header("X-Eldric-Theme", top.theme.id)
        tag, chosen = self.pick(verdict, candidates)
        said = f"{top.theme.id} ({verdict.scorer} {top.score})"
        if tag is None:
            self.requests.labels(top.theme.id, "untagged").inc()
            ctx.add_header("X-Eldric-Theme-Reason",
                           f"{said}: no candidate tagged for it; all {len(candidates)} kept")
            return candidates
        self.requests.labels(top.theme.id, "narrowed").inc()
        ctx.add_header("X-Eldric-Theme-Reason",
                       f"{said}: {tag}, {len(chosen)} of {len(candidates)} workers")
        return chosen
