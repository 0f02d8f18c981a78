"""The bounded fetch of http(s) image URLs, for backends that take an image's bytes only.

OpenAI's chat API takes an image part as a URL (``{"type": "image_url", "image_url":
{"url": "https://…"}}``) or a data: URL
(https://platform.openai.com/docs/guides/images-vision). Several backends take bytes only:
Bedrock Converse's image block (``{"image": {"format", "source": {"bytes"}}}``,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ImageBlock.html),
Gemini's ``inlineData`` (https://ai.google.dev/gemini-api/docs/image-understanding),
Ollama's ``images`` (base64 strings, https://github.com/ollama/ollama/blob/main/docs/api.md).
For them eldric fetches the URL itself, once per request, before the request is
translated: ``inline`` turns every http(s) image of a request into a data: URL (an OpenAI
body) or into an Image with its bytes (a chat_in.Conversation).

Bounded, because the URL is the client's and eldric's host does the fetching: a size cap
(Content-Length checked first, then the bytes as they arrive), one timeout for the whole
fetch, at most a few redirects, and the reply's Content-Type must be an image type the
APIs take (or the bytes must start like one when the server says octet-stream). A fetch
that fails is the client's problem, not the backend's: a 400 ``image_fetch_failed`` whose
message names the URL, raised before anything is sent, so nothing fails over on it.

The fetch goes out without the client's headers or eldric's keys: an image URL is public
or pre-signed, never something eldric authenticates for. Which networks eldric may reach
is the operator's (a firewall); this module does not filter addresses.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp

from eldric.errors import BadRequest, EldricError
from eldric.wire.native.chat_in import IMAGE_TYPES, Conversation, Image
from eldric.wire.vision import CHAT, Vision, in_request, sniff

MAX_BYTES = 20 * 1024 * 1024  # Gemini's inline request limit; Bedrock/Anthropic cap lower
TIMEOUT = 10.0  # seconds for one image: connect, redirects and body
# Distinct URLs one request may have fetched: each is held whole (up to MAX_BYTES) until
# the request is sent, so the count bounds what one request can make a hop hold.
MAX_IMAGES = 20
_REDIRECTS = 3
_CHUNK = 64 * 1024

class ImageFetchFailed(BadRequest):
    code = "image_fetch_failed"


class TooManyImages(BadRequest):
    code = "too_many_images"


async def fetch(session: aiohttp.ClientSession, url: str, *, max_bytes: int = MAX_BYTES,
                timeout: float = TIMEOUT, param: str | None = None) -> tuple[bytes, str]:
    """One image URL -> (its bytes, its media type); ImageFetchFailed naming the URL."""

    def fail(why: str) -> ImageFetchFailed:
        return ImageFetchFailed(f"could not fetch the image {url}: {why}", param=param)

    try:
        async with asyncio.timeout(timeout):
            # identity: the shared session does not decompress (it relays bytes as sent).
            async with session.get(url, headers={"Accept": "image/*",
                                                 "Accept-Encoding": "identity"},
                                   max_redirects=_REDIRECTS, allow_redirects=True) as r:
                if r.status != 200:
                    raise fail(f"it answered HTTP {r.status}")
                if r.headers.get("Content-Encoding", "identity") != "identity":
                    raise fail(f"it sent Content-Encoding {r.headers['Content-Encoding']}")
                if r.content_length is not None and r.content_length > max_bytes:
                    raise fail(f"it is {r.content_length} bytes, over the {max_bytes} "
                               "byte limit")
                data = bytearray()
                async for chunk in r.content.iter_chunked(_CHUNK):
                    data += chunk
                    if len(data) > max_bytes:
                        raise fail(f"it is over the {max_bytes} byte limit")
                said = r.content_type  # lower-cased, parameters dropped
    except ImageFetchFailed:
        raise
    except TimeoutError:
        raise fail(f"no whole reply within {timeout:g}s") from None
    except aiohttp.TooManyRedirects:
        raise fail(f"more than {_REDIRECTS} redirects") from None
    except (aiohttp.ClientError, OSError, ValueError) as e:
        raise fail(f"{type(e).__name__} {e}".strip()) from None
    media_type = said if said in IMAGE_TYPES else None
    if media_type is None and said in ("application/octet-stream", "binary/octet-stream"):
        media_type = sniff(bytes(data[:16]))
    if media_type is None:
        raise fail(f"its Content-Type {said!r} is not one of {', '.join(IMAGE_TYPES)}")
    return bytes(data), media_type


def _body_images(body: dict) -> list[tuple[dict, str, str]]:
    """The http(s) image parts of an OpenAI chat body: (the image_url dict to rewrite,
    its URL, its param)."""
    out: list[tuple[dict, str, str]] = []
    for i, m in enumerate(body.get("messages") or ()):
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            iu = part.get("image_url")
            url = iu if isinstance(iu, str) else iu.get("url") if isinstance(iu, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                continue
            if not isinstance(iu, dict):  # the bare-string form: made the object form
                iu = part["image_url"] = {"url": url}
            out.append((iu, url, f"messages[{i}].content[{j}].image_url"))
    return out


async def inline(session: aiohttp.ClientSession, conv_or_body: Conversation | dict[str, Any],
                 *, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT) -> int:
    """Fetch every http(s) image of a request and put its bytes in its place, in place:

    - a chat_in.Conversation: each Image with a ``url`` gets ``data`` (base64) and
      ``media_type`` (from the reply's Content-Type), its ``url`` set to None;
    - an OpenAI chat body (decoded): each http(s) ``image_url.url`` becomes a data: URL.

    The fetches run concurrently, a URL given twice is fetched once. Returns how many
    parts were rewritten (0: nothing was fetched, the request is as it was). Raises
    ImageFetchFailed (400 image_fetch_failed, naming the URL) for the first that fails,
    TooManyImages (400 too_many_images) before fetching any for more than MAX_IMAGES.
    """
    if isinstance(conv_or_body, Conversation):
        parts: list[Image] = [p for t in conv_or_body.turns for p in t.parts
                              if isinstance(p, Image) and p.url is not None]
        wanted = [(p, p.url or "", None) for p in parts]
    else:
        wanted = _body_images(conv_or_body)  # type: ignore[assignment]
    if not wanted:
        return 0
    urls: dict[str, str | None] = {}
    for _, url, param in wanted:
        urls.setdefault(url, param)
    if len(urls) > MAX_IMAGES:
        raise TooManyImages(f"the request names {len(urls)} image URLs to fetch; at most "
                            f"{MAX_IMAGES} are fetched for this backend (send the others "
                            "as data: URLs)", param="messages")
    tasks = {url: asyncio.ensure_future(fetch(session, url, max_bytes=max_bytes,
                                              timeout=timeout, param=param))
             for url, param in urls.items()}
    try:
        await asyncio.gather(*tasks.values())
    except BaseException:
        for t in tasks.values():
            t.cancel()
        raise
    for target, url, _ in wanted:
        data, media_type = tasks[url].result()
        b64 = base64.b64encode(data).decode("ascii")
        if isinstance(target, Image):
            target.url, target.data, target.media_type = None, b64, media_type
        else:
            target["url"] = f"data:{media_type};base64,{b64}"
    return len(wanted)


async def ready(session: aiohttp.ClientSession, adapter_vision: bool | None,
                inline_images: bool, reach_name: str, options: Any, body: dict[str, Any],
                model: str) -> int:
    """A chat body (decoded) about to go to a native adapter (call.send): 400
    vision_unsupported where the backend's model cannot see (the adapter's `vision`,
    narrowed by the backend's ``options.vision``), else its http(s) image URLs fetched
    into data: URLs where the adapter takes bytes only (``options.image_max_bytes``,
    ``options.image_timeout_ms`` bound the fetch). Returns how many were fetched."""
    if not in_request(body, CHAT):
        return 0
    try:
        v = Vision.of_option(options.get("vision"), adapter_vision, f"backend {reach_name}")
    except ValueError as exc:  # the operator's, not the client's (the cloud checks at start)
        raise EldricError(f"backend {reach_name}: {exc}", status=500,
                          code="backend_misconfigured") from None
    if v.sees(model) is False:
        raise v.refusal(model)
    if not inline_images:
        return 0
    return await inline(session, body, max_bytes=int(options.get("image_max_bytes", MAX_BYTES)),
                        timeout=float(options.get("image_timeout_ms", TIMEOUT * 1000)) / 1000)
