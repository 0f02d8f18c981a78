"""A streamed swarm reply: SSE at once, progress as comment lines (`: eldric.swarm
{...}`), then the final answer: the judge's / synthesis model's own stream relayed token
by token as it generates (Generate), or a chosen member's finished answer (Chosen); the
last data event carries the summed usage and the `eldric` record.

Progress is comment lines, not named events: the openai SDK (python, 3.x) ignores SSE
comments, but hands a named event's data to the caller as a chunk (and fails on one
without data), so `event: eldric.swarm` would break a client that ignores it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import structlog

from eldric import keys, trace
from eldric.errors import EldricError, UpstreamFailure
from eldric.exchange import Answer, LaneRequest, Sink
from eldric.roles.router.swarm import account, members, spans
from eldric.roles.router.swarm.run import Swarm
from eldric.roles.router.swarm.serve import rec_calls, reply_headers
from eldric.roles.router.swarm.strategy import Chosen, Final, Generate, Result, Strategy
from eldric.stream.sse import Framer
from eldric.wire import dialect

log = structlog.get_logger("eldric.router.swarm")
_enc = msgspec.json.Encoder()


def comment(event: dict[str, Any]) -> bytes:
    return b": eldric.swarm " + _enc.encode(event) + b"\n\n"


def data(obj: dict[str, Any]) -> bytes:
    return b"data: " + _enc.encode(obj) + b"\n\n"


class Out:
    """The chunks of the client's stream: its id, model name and creation time."""

    def __init__(self, request: LaneRequest, swarm: Swarm) -> None:
        self.id = f"chatcmpl-swarm-{request[keys.HOP].request_id}"
        self.model = swarm.label
        self.created = int(time.time())

    def chunk(self, delta: dict[str, Any] | None, finish: str | None = None,
              **more: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices, **more}


async def streamed(request: LaneRequest, swarm: Swarm, strategy: Strategy) -> Answer:
    hop = request[keys.HOP]
    stats = swarm.rs.swarm_stats
    headers = [(b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache"),
               *reply_headers(request, swarm)]
    sink = hop.lane.sink(request, 200, headers, None)
    swarm.events = asyncio.Queue()
    out = Out(request, swarm)
    task = asyncio.ensure_future(strategy.run(swarm))
    final_call: Result | None = None
    outcome = "cancelled"
    try:
        await sink.start()
        await sink.write(comment({"type": "started", "strategy": swarm.strategy,
                                  "members": [m.model for m in swarm.members],
                                  "judge": swarm.judge.model}))
        try:
            final = await _progress(sink, swarm, task)
            if isinstance(final, Generate):
                final_call = await _generated(sink, swarm, final, out)
            else:
                await _chosen(sink, swarm, final, out)
            outcome = "ok"
        except EldricError as exc:  # the swarm failed: one error event, then the end
            outcome = "failed"
            await _drain(sink, swarm)
            await sink.write(dialect.OPENAI.stream_error(exc.status, exc.message,
                                                         exc.code or "swarm_failed"))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # a bug: the stream still ends in the API's shape, never cut
            log.exception("swarm_failed_internally", strategy=swarm.strategy)
            outcome = "failed"
            await sink.write(dialect.OPENAI.stream_error(
                500, f"swarm/{swarm.strategy} failed inside eldric", "internal_error"))
        await sink.write(b"data: [DONE]\n\n")
        await sink.end()
    except ConnectionError:  # the client went away mid-swarm
        request.app[keys.BUS].metrics.disconnects.labels(hop.role).inc()
        log.info("swarm_client_left", strategy=swarm.strategy)
    finally:
        if not task.done():
            task.cancel()  # every member's call is cancelled with it (fanout's finally)
            await asyncio.wait([task])
        stats.done(swarm, outcome, final_call)
    return sink.result


async def _progress(sink: Sink, swarm: Swarm, task: asyncio.Future[Final]) -> Final:
    """Write progress while the strategy runs; its Final (or its error, raised)."""
    events = swarm.events
    assert events is not None
    while not task.done():
        get = asyncio.ensure_future(events.get())
        try:
            await asyncio.wait([task, get],  # type: ignore[type-var]
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            await sink.write(comment(get.result()))
    await _drain(sink, swarm)
    return task.result()


async def _drain(sink: Sink, swarm: Swarm) -> None:
    events = swarm.events
    while events is not None and not events.empty():
        await sink.write(comment(events.get_nowait()))


def _summary(swarm: Swarm, final: Final, final_call: Result | None,
             extra_usage: dict[str, int] | None = None) -> tuple[dict[str, Any], dict]:
    rec = account.record(swarm, final, final_call)
    usage = account.usage_sum(rec_calls(swarm, final_call), extra_usage)
    rec["usage"] = usage
    return rec, usage


async def _end(sink: Sink, swarm: Swarm, out: Out, finish: dict[str, Any], rec: dict,
               usage: dict) -> None:
    """The finish chunk, then the usage chunk if the client asked for it; the last of
    them carries the `eldric` record."""
    wants_usage = bool((swarm.client.get("stream_options") or {}).get("include_usage"))
    if wants_usage:
        await sink.write(data(finish))
        await sink.write(data(out.chunk(None, usage=usage, eldric=rec)))
    else:
        await sink.write(data({**finish, "eldric": rec}))


async def _chosen(sink: Sink, swarm: Swarm, final: Chosen, out: Out,
                  final_call: Result | None = None) -> None:
    """A member's finished answer: its content and tool calls, as they are (`final_call`:
    the final call's whole answer, when its model ignored "stream": in the usage sum)."""
    r = final.result
    msg = r.message or {}
    await sink.write(data(out.chunk({"role": "assistant", "content": ""})))
    if r.text:
        await sink.write(data(out.chunk({"content": r.text})))
    for j, call in enumerate(r.tool_calls or ()):
        await sink.write(data(out.chunk({"tool_calls": [{"index": j, **call}]})))
    if msg.get("refusal"):
        await sink.write(data(out.chunk({"refusal": msg["refusal"]})))
    rec, usage = _summary(swarm, final, final_call)
    await _end(sink, swarm, out, out.chunk({}, r.finish_reason or "stop"), rec, usage)


async def _generated(sink: Sink, swarm: Swarm, final: Generate, out: Out) -> Result | None:
    """The judge's / synthesis model's stream, relayed event by event as it comes (its
    chunks renamed to this reply's id and model; its usage chunk kept for the sum); None
    when it failed before its first byte and the strategy's fallback was sent instead.
    Traced, inside its eldric.swarm.judge span (settled with the call's Result)."""
    with spans.member(swarm.request, final.ask, swarm.strategy) as span:
        n = len(swarm.calls)
        r = None
        try:
            r = await _generating(sink, swarm, final, out, span)
            return r
        finally:
            if span is not trace.NULL:
                got = r or next((c for c in reversed(swarm.calls[n:])
                                 if c.ask is final.ask), None)
                if got is not None:
                    spans.settle(span, got)


async def _generating(sink: Sink, swarm: Swarm, final: Generate, out: Out,
                      span: trace.SpanLike) -> Result | None:
    ask = final.ask
    swarm.progress("final_started", stage=ask.stage, model=ask.member.model)
    await _drain(sink, swarm)
    t0 = time.perf_counter()
    reached = await members.reach(swarm.request, swarm.rs, swarm.raw,
                                  members.member_body(swarm.client, ask, stream=True),
                                  ask.member.model, parent=span)
    ms = lambda: (time.perf_counter() - t0) * 1000  # noqa: E731
    if reached.reply is None:
        r = Result(ask, ok=False, worker=reached.worker, latency_ms=ms(), outcome="error",
                   error=reached.error)
        swarm.calls.append(r)
        if final.fallback is not None:
            await _chosen(sink, swarm, final.fallback, out)
            return None
        raise swarm.failed(f"the {ask.stage} model failed")
    reply = reached.reply
    usage: dict[str, int] | None = None
    finish: dict[str, Any] | None = None
    framer = Framer()
    try:
        if reply.content_type != b"text/event-stream":  # a backend that ignored "stream"
            body = await reply.read_all()
            try:
                whole = msgspec.json.decode(body)
                choice = whole["choices"][0]
                if not isinstance(choice["message"], dict):
                    raise TypeError("message is not an object")
            except Exception as exc:  # garbage: a failed call (as whole), not eldric's bug
                r = Result(ask, ok=False, worker=reached.worker, latency_ms=ms(),
                           outcome="error", error=f"{reached.worker}: not a chat completion "
                                                  f"({type(exc).__name__})")
                swarm.calls.append(r)
                if final.fallback is not None:
                    await _chosen(sink, swarm, final.fallback, out)
                    return None
                raise swarm.failed(f"the {ask.stage} model failed") from None
            usage = whole.get("usage") if isinstance(whole.get("usage"), dict) else None
            r = Result(ask, ok=True, message=choice["message"],
                       finish_reason=choice.get("finish_reason"), usage=usage,
                       worker=reached.worker, latency_ms=ms())
            await _chosen(sink, swarm, Chosen(r, final.reason), out, r)
            return r
        async for chunk in reply.chunks():
            for event, n in framer.feed(chunk):
                got = _event(event[:n])
                if got is None:
                    continue
                if got.get("error") is not None:  # the backend's own mid-stream error
                    raise UpstreamFailure.of(reached.worker or ask.member.model, "closed",
                                             502, "the stream ended with an error event")
                if isinstance(got.get("usage"), dict):
                    usage = got["usage"]
                choices = got.get("choices") or []
                if not choices:
                    continue  # the usage chunk: summed into this reply's own
                mine = out.chunk(choices[0].get("delta") or {},
                                 choices[0].get("finish_reason"))
                if choices[0].get("finish_reason") is not None:
                    finish = mine  # held: the record goes on the last data event
                    continue
                await sink.write(data(mine))
    except UpstreamFailure as exc:  # broke off mid-answer: the stream ends with an error
        r = Result(ask, ok=False, worker=reached.worker, latency_ms=ms(), outcome="error",
                   error=exc.message)
        swarm.calls.append(r)
        raise swarm.failed(f"the {ask.stage} model failed mid-answer") from None
    finally:
        reply.close()
    r = Result(ask, ok=True, usage=usage, worker=reached.worker, latency_ms=ms(),
               finish_reason=(finish or {}).get("choices", [{}])[0].get("finish_reason"))
    rec, total = _summary(swarm, final, r)
    await _end(sink, swarm, out, finish or out.chunk({}, "stop"), rec, total)
    return r


def _event(raw: bytes) -> dict[str, Any] | None:
    """An SSE event's JSON data, or None ([DONE], a comment, not JSON)."""
    lines = [ln[5:].lstrip() for ln in raw.split(b"\n") if ln.startswith(b"data:")]
    if not lines:
        return None
    payload = b"\n".join(lines).strip()
    if payload == b"[DONE]":
        return None
    try:
        obj = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    return obj if isinstance(obj, dict) else None
