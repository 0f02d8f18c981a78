"""The one face the edge's handlers call to count a request (es.usage).

    ticket = await es.usage.begin(request, client, path, body, model)  # None: not counted
    ... forward(..., tap=ticket.tap, rewrite=ticket.rewrite, drop=ticket.drop) ...
    await ticket.end(answer, cancelled)  # in a finally: a client that left still counts

begin() reserves against the client's budgets (es.budgets; a refusal is raised before
any router is asked); end() reads what the reply used (the tap's count of a stream, the
whole body of a whole reply; else the estimate), prices it, settles the reservation,
counts it on /metrics and hands the Record to the recorder (never blocking: the store
writes in batches). With usage off begin() returns None and nothing of this runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from eldric import keys
from eldric.errors import EldricError
from eldric.exchange import Answer, LaneRequest, Reply
from eldric.roles.edge.clients import Client
from eldric.roles.edge.metrics import EdgeMetrics
from eldric.roles.edge.usage.budgets import Budgets, Hold
from eldric.roles.edge.usage.config import UsageConfig
from eldric.roles.edge.usage.kept import Kept
from eldric.roles.edge.usage.meter import Meter, Reader
from eldric.roles.edge.usage.prices import Prices
from eldric.roles.edge.usage.read_anthropic import Anthropic
from eldric.roles.edge.usage.read_ollama import Ollama
from eldric.roles.edge.usage.read_openai import OpenAI, Rerank, usage_only
from eldric.roles.edge.usage.read_responses import Responses
from eldric.roles.edge.usage.record import Record, Tokens
from eldric.roles.edge.usage.store import Recorder

# The paths counted, and how each API states its usage.
READERS: dict[str, Reader] = {
    "/v1/chat/completions": OpenAI(),
    "/v1/completions": OpenAI(),
    "/v1/embeddings": OpenAI(embeddings=True),
    "/v1/rerank": Rerank(),
    "/v1/messages": Anthropic(),
    "/v1/responses": Responses(),
    "/api/chat": Ollama(),
    "/api/generate": Ollama(),
    "/api/embed": Ollama(embed=True),
    "/api/embeddings": Ollama(embed=True),
}
# Where the edge asks a streamed reply for its usage chunk when the client did not (the
# translated APIs' workers ask for it themselves).
ASKS = frozenset(("/v1/chat/completions", "/v1/completions"))
# Ollama streams unless told not to.
STREAMS_BY_DEFAULT = frozenset(("/api/chat", "/api/generate"))
WORKER = b"x-eldric-worker"  # the router's: the worker that answered
_INCLUDE = b'"stream_options":{"include_usage":true},'


class _Options(msgspec.Struct):
    include_usage: bool | None = None
    num_predict: int | None = None  # Ollama's options


class _Ask(msgspec.Struct):
    """The little of a request the meter needs, in the one small decode it adds."""

    stream: bool | None = None
    stream_options: _Options | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    max_output_tokens: int | None = None  # Responses
    options: _Options | None = None  # Ollama


_ask = msgspec.json.Decoder(_Ask)


class Usage:
    def __init__(self, cfg: UsageConfig, budgets: Budgets, recorder: Recorder,
                 metrics: EdgeMetrics) -> None:
        self.cfg = cfg
        self.budgets = budgets
        self.recorder = recorder
        self.metrics = metrics
        self.prices = Prices(cfg.prices)

    async def begin(self, request: LaneRequest, client: Client | None, path: str,
                    body: bytes, model: str | None) -> Ticket | None:
        reader = READERS.get(path) if request.method == "POST" else None
        if reader is None:
            return None
        try:
            ask = _ask.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            ask = _Ask()  # the hops refuse it, as without usage
        # the largest the request names: a backend may honour any one of them (OpenAI's
        # max_completion_tokens over max_tokens), and the smaller would under-reserve
        named = [n for n in (ask.max_tokens, ask.max_completion_tokens, ask.max_output_tokens,
                             ask.options.num_predict if ask.options else None) if n]
        max_tokens = max(named) if named else None
        hold = await self.budgets.reserve(client, model or "", max_tokens, body)
        return Ticket(self, request, client, path, body, model or "", hold, reader, ask)

    async def whole(self, client: Client | None, path: str, body: bytes, model: str,
                    status: int, reply: bytes, latency_ms: float, backend: str = "") -> None:
        """A request answered off the request path (a batch line): its whole reply's usage
        recorded and charged to the client's budgets as a served request's is. Its tokens
        count to the client's token and cost budgets; a client already over them is
        recorded only (the line was run: it is not taken back)."""
        reader = READERS.get(path)
        if reader is None:
            return
        meter = Meter(reader)
        ok = status < 400
        tokens, cost = Tokens(), None
        if ok:
            meter.whole(reply)
            tokens = meter.tokens(body)
            cost = self.prices.cost(model, tokens)
        if client is not None and tokens.total:
            try:
                hold = await self.budgets.reserve(client, model, 0, 0)
            except EldricError:  # over budget (or model refused): recorded, not charged
                hold = None
            if hold is not None:
                await self.budgets.settle(hold, tokens, cost)
        self.record(Record(
            ts=time.time(), client=client.name if client else "anonymous", model=model,
            backend=backend, path=path, status=status, tokens=tokens, cost=cost,
            latency_ms=latency_ms, ttft_ms=None, stream=False, abandoned=False), body, reply)

    def record(self, record: Record, request_body: bytes | None = None,
               reply_body: bytes | None = None) -> None:
        m = self.metrics
        client, model = m.client_label(record.client), m.model_label(record.model)
        t = record.tokens
        for kind, n in (("prompt", t.prompt), ("completion", t.completion),
                        ("cached", t.cached), ("cache_hit", t.cache_hit)):
            if n:
                m.tokens.labels(client, model, kind).inc(n)
        if record.cost:
            m.cost.labels(client, model).inc(record.cost)
        self.recorder.add(record, request_body, reply_body)


class Ticket:
    """One counted request: what forward() is given (tap, rewrite, drop), and end()."""

    __slots__ = ("usage", "request", "client", "path", "body", "model", "hold", "meter",
                 "stream", "ts", "t0", "tap", "rewrite", "drop", "kept")

    def __init__(self, usage: Usage, request: LaneRequest, client: Client | None, path: str,
                 body: bytes, model: str, hold: Hold, reader: Reader, ask: _Ask) -> None:
        self.usage = usage
        self.request = request
        self.client = client
        self.path = path
        self.body = body
        self.model = model
        self.hold = hold
        self.meter = Meter(reader)
        self.stream = ask.stream if ask.stream is not None else path in STREAMS_BY_DEFAULT
        self.ts = time.time()
        self.t0 = time.perf_counter()
        self.tap: Callable[[bytes], None] = self.meter.tap
        self.kept: Kept | None = None  # a streamed reply for the request log, if asked
        if self.stream and usage.recorder.wants_bodies:
            self.kept = Kept(self.meter)
            self.tap = self.kept.tap
        self.rewrite: Callable[[bytes], bytes] | None = None
        self.drop: Callable[[bytes], bool] | None = None
        asked = ask.stream_options is not None and ask.stream_options.include_usage
        if self.stream and path in ASKS and not asked:
            # spliced only where no stream_options key is (a null one would be doubled)
            self.rewrite = _with_usage if ask.stream_options is None and \
                b'"stream_options"' not in body else _reencoded
            self.drop = usage_only

    async def release(self) -> None:
        """Not answered where this ticket was taken (a plugin that passed it on): the
        reservation is given back, nothing is recorded."""
        await self.usage.budgets.settle(self.hold, Tokens(), 0.0)

    async def end(self, answer: Answer | None, cancelled: bool = False,
                  status: int | None = None, cache_hit: bool = False) -> None:
        """The reply is out (or the client left, or it failed: `status` then, the error's).
        `cache_hit`: served by the response cache (its tokens counted as such, cost 0)."""
        meter = self.meter
        reply = self.kept.reply(self.model) if self.kept is not None else None
        if answer is not None:
            status = answer.status
            if not self.stream or not meter.events:
                reply = _whole_body(answer)
                if reply is not None:
                    meter.whole(reply)
        if status is None:  # the client left: mid-stream (a tapped reply is a 2xx), or
            status = 200 if meter.events else 499 if cancelled else 500  # before any reply
        ok = status < 400
        prices = self.usage.prices
        if ok or meter.events or cancelled:  # what was sent is counted
            tokens = meter.tokens(self.body)
            cost = prices.cost(self.model, tokens)
        else:  # refused: nothing used
            tokens = Tokens()
            cost = 0.0 if self.model and prices.of(self.model) is not None else None
        if cache_hit:  # no backend ran: the tokens are the stored reply's, nothing spent
            tokens = Tokens(prompt=tokens.prompt, completion=tokens.completion,
                            cached=tokens.cached, estimated=tokens.estimated,
                            cache_hit=tokens.total)
            cost = 0.0
        hop = self.request[keys.HOP]
        if hop.span is not None and (tokens.prompt or tokens.completion):  # traced
            hop.span.set_attributes({"gen_ai.usage.input_tokens": tokens.prompt,
                                     "gen_ai.usage.output_tokens": tokens.completion})
        await self.usage.budgets.settle(self.hold, tokens, cost)
        self.usage.record(Record(
            ts=self.ts, client=self.client.name if self.client else "anonymous",
            model=self.model, backend=_worker(hop.reply_head), path=self.path,
            status=status, tokens=tokens, cost=cost,
            latency_ms=(time.perf_counter() - self.t0) * 1000,
            ttft_ms=hop.ttfb * 1000 if hop.ttfb is not None else None, stream=self.stream,
            # a tapped stream that never reached its end; a reply not tapped (the
            # plugin tool loop's stream) is estimated but not called abandoned
            cache="hit" if cache_hit else "",
            abandoned=cancelled or (ok and self.stream and meter.events > 0
                                    and not meter.done)),
            self.body, reply)  # the bodies: for the request log, kept only if asked


def _with_usage(body: bytes) -> bytes:
    """The body asking for the stream's usage chunk: spliced in after its opening brace
    (the body names no stream_options: no key is doubled), the rest byte for byte."""
    i = body.find(b"{")
    if i < 0 or body[:i].strip():
        return body  # not a JSON object: the hops refuse it as they would
    return body[:i + 1] + _INCLUDE + body[i + 1:]  # stream: true is in it: never "{}"


def _reencoded(body: bytes) -> bytes:
    """stream_options given (null, or without include_usage: true): include_usage set in
    it (a re-encode, the rare case)."""
    try:
        obj = msgspec.json.decode(body)
        options = obj.get("stream_options")
        obj["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                 "include_usage": True}
        return msgspec.json.encode(obj)
    except (msgspec.DecodeError, UnicodeDecodeError, AttributeError, RecursionError):
        return body


def _whole_body(answer: Answer) -> bytes | None:
    """A whole reply's body (the fast lane's Reply, aiohttp's Response, the filters'
    Held reply before its outlets); None once streamed."""
    if isinstance(answer, Reply):
        return answer.body
    body = getattr(answer, "body", None)  # web.Response, filters.Held
    return body if isinstance(body, bytes) else None


def _worker(head: list[tuple[bytes, bytes]] | None) -> str:
    """The worker the router says answered (X-Eldric-Worker on its reply)."""
    for k, v in head or ():
        if len(k) == len(WORKER) and k.lower() == WORKER:
            return v.decode("latin-1")
    return ""
