"""The anthropic SDK as the judge of eldric's Messages replies, with no server: its own
client reads the bytes through a MockTransport of the HTTP library it is built on:
SSE decoding, MessageStream's accumulate_event, the raw stream; and its pydantic types
validate each shape strictly (the client itself constructs leniently, so a missing field
would pass it unnoticed)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import anthropic
import anthropic._base_client
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

# The SDK's own HTTP library: httpx2 from anthropic 2.x on, httpx before (the lowest
# version the tests admit); a client of the other one is refused.
httpx = getattr(anthropic._base_client, "httpx2", None) or anthropic._base_client.httpx

_EVENT = TypeAdapter(RawMessageStreamEvent)
_ASK = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}


def client(body: bytes, media_type: str = "text/event-stream") -> anthropic.Anthropic:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": media_type})

    return anthropic.Anthropic(api_key="k", base_url="http://eldric.test", max_retries=0,
                               http_client=httpx.Client(transport=httpx.MockTransport(reply)))


def events(sse: bytes) -> list[dict]:
    """Each event's data, checked: it has an `event:` line naming its type, and is a
    RawMessageStreamEvent (error events: Anthropic's error shape)."""
    out = []
    for raw in sse.decode().split("\n\n")[:-1]:
        name_line, data_line = raw.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), raw
        data = json.loads(data_line[len("data: "):])
        assert data["type"] == name_line[len("event: "):]
        if data["type"] == "error":
            assert set(data["error"]) >= {"type", "message"}
        else:
            _EVENT.validate_python(data)
        out.append(data)
    assert sse.endswith(b"\n\n")
    return out


def stream_helper(sse: bytes) -> tuple[Message, str, list[Any]]:
    """messages.stream(): the final message (validated as a Message), the text_stream's
    text, and the helper's events."""
    with client(sse).messages.stream(**_ASK) as s:
        seen = list(s)
        final = s.get_final_message()
    Message.model_validate(final.model_dump())
    text = "".join(e.text for e in seen if e.type == "text")
    return final, text, seen


def raw_stream(sse: bytes) -> list[Any]:
    """create(stream=True): the raw events the SDK yields."""
    return list(client(sse).messages.create(**_ASK, stream=True))


def whole(body: bytes) -> Message:
    """create(): the SDK's Message, validated strictly as well."""
    msg = client(body, "application/json").messages.create(**_ASK)
    Message.model_validate(json.loads(body))
    return msg


async def parsed(raw: Any) -> Any:
    """A with_raw_response reply parsed: awaited in anthropic 2.x, plain before."""
    got = raw.parse()
    return await got if inspect.isawaitable(got) else got
