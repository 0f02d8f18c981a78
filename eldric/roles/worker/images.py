"""The worker's images: refused where its backend's model cannot see them, fetched into
data: URLs where its backend takes no image URLs (Ollama's OpenAI API takes base64 only:
"image URLs are not currently supported", ollama/openai/openai.go decodeImageURL).

Off the hot path: a text request pays one byte search (eldric.wire.vision.maybe)."""

from __future__ import annotations

import msgspec

from eldric import keys
from eldric.backends import images
from eldric.exchange import LaneRequest
from eldric.roles.worker.state import WorkerState
from eldric.wire.vision import CHAT, Vision, in_request, maybe


def vision_of(st: WorkerState) -> Vision:
    """The kind's vision (from its table row), narrowed by --vision-models and
    --no-vision."""
    cfg = st.cfg
    return Vision(st.kind.vision, models=cfg.vision_models, off=not cfg.vision,
                  where=f"backend {cfg.backend}")


async def admit(request: LaneRequest, st: WorkerState, body: bytes, path: str,
                model: str | None) -> bytes:
    """The body to send for a request of `path`'s API: as it came, unless it holds
    images its model cannot see (400 vision_unsupported) or image URLs the backend cannot
    fetch (fetched here, 400 image_fetch_failed naming the URL)."""
    if not maybe(body, path):
        return body
    vision = st.vision
    fetch = path == CHAT and not st.kind.image_urls
    if not fetch and (not vision.checks or vision.sees(model) is not False):
        return body
    try:
        obj = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return body  # the backend refuses it as it would
    if not in_request(obj, path):
        return body
    if vision.sees(model) is False:
        raise vision.refusal(model)
    if fetch and await images.inline(request.app[keys.SESSION], obj,
                                     max_bytes=st.cfg.image_max_bytes,
                                     timeout=st.cfg.image_timeout_ms / 1000):
        return msgspec.json.encode(obj)
    return body
