"""Where forward() sends (Target, Timeouts), and what going wrong there means: the one
mapping of an upstream connection's errors to the UpstreamFailure a caller may retry on;
with_fields(), the body rewrite callers pass to forward()."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from eldric.bus import UpstreamState
from eldric.errors import UpstreamFailure
from eldric.stream import client

# What the upstream connection raises once the reply has begun: its end, its silence, or
# bytes that are not HTTP (a ConnectionError from the client's side is the client leaving).
REPLY_ERRORS = (client.ReplyTimeout, client.UpstreamClosed, client.ProtocolError)


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 300.0
    idle: float = 120.0

    @classmethod
    def from_config(cls, cfg: object) -> Timeouts:
        return cls(connect=cfg.connect_timeout_ms / 1000,  # type: ignore[attr-defined]
                   first_byte=cfg.first_byte_timeout_ms / 1000,  # type: ignore[attr-defined]
                   idle=cfg.idle_timeout_ms / 1000)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send: the upstream's bus state, its base URL and the headers it needs."""

    state: UpstreamState
    base_url: str  # without trailing slash, e.g. http://127.0.0.1:11434
    headers: Mapping[str, str] | None = None  # e.g. the upstream's Authorization


def upstream_failure(exc: OSError, target: Target, timeouts: Timeouts, phase: str) -> UpstreamFailure:
    """The one mapping of what went wrong upstream to what the caller may retry on:
    `phase` is "open" (no reply yet), "body" (a whole reply broke off) or "stream" (a
    streamed one broke off before its first byte went out)."""
    up = target.state.id
    if isinstance(exc, client.ConnectTimeout):
        return UpstreamFailure.of(up, "connect", 504,
                                  f"upstream {up} did not accept a connection within "
                                  f"{timeouts.connect:g}s (connect timeout)")
    timed_out = isinstance(exc, TimeoutError)
    if phase == "open":
        if timed_out:
            return UpstreamFailure.of(up, "timeout", 504, f"upstream {up} gave no reply: {exc}")
        # refused, reset, closed, unreachable, TLS, not HTTP
        return UpstreamFailure.of(up, "connect", 503, f"upstream {up} ({target.base_url}) "
                                  f"is unreachable: {_describe(exc)}")
    what = "while sending its reply" if phase == "body" else "mid-reply"
    return UpstreamFailure.of(up, "timeout" if timed_out else "closed",
                              504 if timed_out else 502,
                              f"upstream {up} failed {what}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def with_fields(**fields: object) -> Callable[[bytes], bytes]:
    """A body rewrite that sets top-level fields (e.g. a fallback model, stream_options).

    It decodes and re-encodes the body, so a caller uses it only when it must change it.
    """
    import msgspec

    def rewrite(body: bytes) -> bytes:
        data = msgspec.json.decode(body)
        data.update(fields)
        return msgspec.json.encode(data)

    return rewrite
