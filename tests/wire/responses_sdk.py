"""The openai SDK as the judge of what eldric's /v1/responses translator sends: its types
validate the objects, and its own clients (create, create(stream=True), the stream helper)
read bytes served by an httpx MockTransport, as they would read them off the wire."""

from __future__ import annotations

import httpx
import msgspec
import openai
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

_events = TypeAdapter(ResponseStreamEvent)


def client(body: bytes, content_type: str) -> openai.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})
    return openai.OpenAI(api_key="k", base_url="http://test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def validate_response(body: bytes) -> Response:
    """Strict validation: every field the SDK's type requires, of its type."""
    return Response.model_validate_json(body)


def events_of(stream_bytes: bytes) -> list[dict]:
    """The data of each event, each validated against the SDK's ResponseStreamEvent union;
    also checks that each event's `event:` line names its type."""
    out = []
    for block in stream_bytes.split(b"\n\n"):
        if not block.strip():
            continue
        lines = block.split(b"\n")
        assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), block
        data = msgspec.json.decode(lines[1][6:])
        assert lines[0][7:].decode() == data["type"]
        _events.validate_python(data)
        out.append(data)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def sdk_stream(stream_bytes: bytes):  # type: ignore[no-untyped-def]
    """The SDK's responses.stream() helper over these bytes: (events, final response)."""
    c = client(stream_bytes, "text/event-stream")
    with c.responses.stream(model="m", input="hi") as stream:
        events = list(stream)
        return events, stream.get_final_response()
