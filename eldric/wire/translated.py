"""The client API paths eldric translates where a backend lacks them, and how.

Every worker-like role serves each of these paths: passed through where its backend
serves it natively, translated (eldric.wire.translate) where it does not; routers and the
edge route and relay them like the other inference paths. A new client API is one entry.
"""

from __future__ import annotations

from eldric.wire import responses
from eldric.wire.translate import Translation

TRANSLATED: dict[str, Translation] = {
    "/v1/responses": Translation(responses.translator),  # OpenAI's Responses API
}
