"""A native API's error that arrives inside a 2xx stream before any content.

TGI's ``/generate_stream`` always answers 200 and sends even its input validation and
overload errors as the stream's first event (router/src/server.rs: ``generate_stream``
returns the SSE stream whatever happens); Triton may do the same when inference fails
right away. Nothing has reached the client yet, so this is the error reply it stands
for, not a broken stream: an egress's ``feed`` raises Refused and the call
(eldric.backends.call) treats it as that reply — 429/5xx fail over, a 4xx is the
client's answer — instead of sending an error event.
"""

from __future__ import annotations


class Refused(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status} in the stream's first event")
        self.status = status  # what the client gets if no other backend answers
        self.body = body  # OpenAI error JSON
