"""The contract of a native adapter: OpenAI's API in, a backend's own API out, and back.

An **Adapter** is one native API (Gemini, Bedrock Converse, Cohere v2, KServe v2, TGI's
native generate, a configured template…). Per OpenAI path it serves
(``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/rerank``) it has a factory that
makes that request's **Egress** from the OpenAI body. An Egress is one request's
translation: pure, no I/O, bytes in and bytes out, like a client API's Translator
(``eldric/wire/translate.py``) facing the other way. So the same Egress serves the worker
and the cloud role, a client's Messages or Responses request too (its translator turns it
into a chat body first and the chat reply back after), and is tested against the API's
documented transcripts without a server.

What ``backends/call.py`` does with it, in order::

    egress = adapter.ops[path](body, ctx)      # BadRequest (400) for what the API cannot take
    out = egress.outbound()                    # the native request
    headers = reach's auth (signed over out's method, URL and body where the API wants it)
    reply = send it
    status >= 400:  (status, openai_error_json) = egress.error(status, raw)
                    a 429/503 without a Retry-After header: egress.retry_after(raw)
                    (optional) -> the seconds its body gives (Google's RetryInfo), kept
                    as the failure's Retry-After
                    -> UpstreamFailure before the first byte (the caller may fail over)
    whole reply:    egress.whole(raw) -> the OpenAI JSON body (ValueError: unreadable, 502)
    streamed:       nxt = egress.follow(raw_head)  # a second request (Replicate's stream URL)
                    the reply cut into frames by out.framing; egress.feed(frame) per frame
                    -> OpenAI SSE events; at the end egress.finish(); a stream that ended
                    before egress.done is cut with an error event
    egress.usage -> counted (prompt, completion)
    whole, not ready:  nxt = egress.follow(raw)  # a request to ask again (Replicate's
                    urls.get while a prediction is processing), polled until None
    client left:    egress.cancel() (optional) -> a request that stops the work
                    upstream (Replicate's urls.cancel), sent in the background

Frames by ``Outbound.framing``: ``sse`` one SSE event (its bytes without the blank line,
``event:``/``data:`` lines as sent); ``ndjson`` one line without its newline; ``aws`` one
AWS event-stream message's payload, with its ``:event-type`` (``feed`` gets
``b"<event-type>\\n" + payload``; an ``:message-type`` exception becomes
``b"!<exception-type>\\n" + payload``); ``json`` the whole body once (an API that streams
nothing; ``feed`` gets it whole and the call ends the stream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

# The request and context types are pure data the translators in eldric/wire/native/
# build; they live there so wire never imports this package (whose call.py imports the
# core, which imports wire: a cycle tests/test_layering.py refuses).
from eldric.wire.native.outbound import Context, Framing, Outbound

if TYPE_CHECKING:
    from eldric.bus import UpstreamState

__all__ = ["Adapter", "Context", "Egress", "EgressFactory", "Framing", "Outbound", "Reach",
           "Signer"]

class Egress(Protocol):
    """One request's translation (see the module's docstring for the order of calls)."""

    stream: bool  # the client asked for a streamed reply
    done: bool  # the native stream said it ended (normally, or with an error event sent)
    # (optional, default False) an API whose stream has no end marker: the body's end is
    # a normal end (finish() is called), not a cut
    # ends_with_body: bool
    usage: tuple[int, int] | None  # (prompt, completion) tokens, once the reply said

    def outbound(self) -> Outbound: ...

    def whole(self, raw: bytes) -> bytes:
        """A whole 2xx native reply -> the OpenAI JSON reply (chat.completion, the
        embeddings list, the rerank results). ValueError: not what the API promises."""
        ...

    def feed(self, frame: bytes) -> list[bytes]:
        """One native frame -> OpenAI SSE events (each ``b"data: {...}\\n\\n"``); an
        in-stream error becomes OpenAI's error event and sets ``done``."""
        ...

    def finish(self) -> list[bytes]:
        """The native stream ended: what is left (the finish chunk if not sent, the usage
        chunk if asked for, ``data: [DONE]``); nothing after an error event."""
        ...

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        """A native error reply -> (the status eldric answers, OpenAI error JSON). The
        status decides failover: 429 and 5xx are tried elsewhere, other 4xx are the
        client's (eldric.errors.error_json; eldric.stream.upstream_errors.normalise for
        a body that is not the API's error shape)."""
        ...

    def follow(self, raw: bytes) -> Outbound | None:
        """For an API whose stream is a second request: given the first reply's body
        (2xx), that request (Replicate's ``urls.stream``); for a whole reply not ready
        yet, the request that asks again (``urls.get``, polled); None for every other
        API and once the reply is there."""
        ...


class Reach(Protocol):
    """One configured backend, as the call needs it (the cloud role's Backend, the
    worker's own)."""

    name: str
    url: str  # its base URL (the adapter's paths are below it)
    key: str | None
    options: Mapping[str, Any]  # its adapter options (region, project, template, …)
    extra_headers: dict[str, str]  # configured headers sent on every request
    state: UpstreamState


# The auth headers of one request: (backend, method, absolute URL, headers so far, body).
# No I/O: a token that must be refreshed is kept fresh elsewhere and read here; SigV4
# signs over all of it.
Signer = Callable[[Reach, str, str, Mapping[str, str], bytes], dict[str, str]]

# An OpenAI body (decoded) and the request's context -> its Egress. Raises
# eldric.errors.BadRequest (a 400 naming the parameter) for what the API cannot take.
EgressFactory = Callable[[dict, Context], Egress]


@dataclass(frozen=True)
class Adapter:
    """One native API: the OpenAI paths it serves and how, its model list, its auth."""

    name: str  # "gemini", "bedrock", … (a BackendDef's `api`)
    ops: Mapping[str, EgressFactory]  # "/v1/chat/completions" -> factory, …
    sign: Signer  # eldric.backends.auth's, by the API's scheme
    # The model list (also the health probe): the request below the backend's URL, or
    # None where the API has none (then the configured `models` option is the list and
    # `health` is probed, or nothing when health is None too).
    models: Callable[[Reach], Outbound | None]
    parse_models: Callable[[bytes], list[str]]
    health: Callable[[Reach], Outbound | None] = lambda r: None  # noqa: E731 - as given
    tools: Literal["native", "xml"] = "native"  # its chat takes tools, or eldric emulates them
    vision: bool | None = None  # image parts: taken (True), refused 400 (False), unknown (None)
    # Its API takes an image's bytes only (Bedrock, Gemini inlineData): call.send fetches
    # a chat's http(s) image URLs into data: URLs (eldric.backends.images.inline) before
    # the egress is made, so the Egress only ever sees data: URLs.
    inline_images: bool = False

    # Awaited before a request is signed, for a scheme whose credentials must be fetched
    # first (a Google service account's first token); returns at once once they are
    # held (renewals run in the background, see auth_google).
    ready: Callable[[Reach], Awaitable[None]] | None = None

    # Hosts besides the backend's own a URL read from its reply (Outbound.from_reply) may
    # name, over https only: "stream.replicate.com" exactly, ".replicate.net" and its
    # subdomains. Any other host is refused (502) before anything is sent, so a reply
    # naming another host never gets the backend's credentials.
    reply_hosts: tuple[str, ...] = ()
    # The options it reads besides those every backend takes (eldric.backends.options
    # COMMON): any other key is refused when the backend is configured, naming the
    # closest (a misspelt option would otherwise be ignored unsaid). None: not checked.
    option_keys: frozenset[str] | None = None
    # (options, key) -> raises ValueError naming what cannot work: a required option
    # missing (Vertex's project, the template's path), an extra not installed. Run when
    # the backend is configured, so the operator hears it at start-up, not per request.
    check: Callable[[Mapping[str, Any], str | None], None] | None = None
    # (status, body) of a probe's non-2xx reply -> whether it says the key is refused:
    # 401/403, and where an API says so otherwise (Gemini: 400 with API_KEY_INVALID).
    refused: Callable[[int, bytes], bool] = lambda status, raw: status in (401, 403)  # noqa: E731
