"""POST /v1/messages/count_tokens where the backend does not serve it: the prompt, as the
Chat Completions messages /v1/messages would send, for a backend's tokenizer; else an
estimate, said to be one.

The estimate: one token per 4 characters of the prompt's text (the system prompt, each
message's text, each tool call's name and arguments, each tool's name, description and
JSON schema), rounded up, plus 1,600 per image (width × height / 750, Anthropic's rule for
an image, at about 1.15 megapixels, the size it scales larger images down to: the image's
own size is not read). A rule of thumb for English text and BPE tokenizers, not a count:
whoever serves it marks the reply as an estimate (X-Eldric-Estimate: true).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.wire.anthropic_request import Prompt, chat_messages, chat_tools, decode

CHARS_PER_TOKEN = 4
TOKENS_PER_IMAGE = 1600

_encode = msgspec.json.encode


class Count:
    """One count_tokens request: `chat` is its prompt as Chat Completions messages (and
    tools), what a tokenizer that applies the chat template counts."""

    def __init__(self, prompt: Prompt):
        self.model = prompt.model
        self.chat: dict[str, Any] = {"model": prompt.model, "messages": chat_messages(prompt)}
        chat_tools(prompt, self.chat)

    def estimate(self) -> int:
        chars, images = 0, 0
        for m in self.chat["messages"]:
            content = m.get("content")
            if isinstance(content, str):
                chars += len(content)
            for part in content if isinstance(content, list) else ():
                if part["type"] == "text":
                    chars += len(part["text"])
                else:
                    images += 1
            for call in m.get("tool_calls") or ():
                chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
        for tool in self.chat.get("tools") or ():
            chars += len(_encode(tool["function"]))
        return -(-chars // CHARS_PER_TOKEN) + images * TOKENS_PER_IMAGE


def count(body: bytes) -> Count:
    """A count_tokens body, or a 400 naming the field."""
    return Count(decode(body, Prompt))


def reply(input_tokens: int) -> bytes:
    return _encode({"input_tokens": input_tokens})


# What marks an estimated count (README: "count_tokens").
ESTIMATE_HEADERS = {"X-Eldric-Estimate": "true"}


class Tokenize:
    """count_tokens by vLLM's /tokenize, which applies the model's chat template to
    messages: {"model", "messages", "add_generation_prompt"} in (tools where it takes them;
    an older vLLM ignores the field), {"count", "max_model_len", "tokens"} out. A
    Translator that never streams."""

    upstream_path = "/tokenize"
    stream = False
    media_type = "application/json"

    def __init__(self, c: Count):
        self.model = c.model
        self._body = {**c.chat, "add_generation_prompt": True}

    def request(self) -> bytes:
        return _encode(self._body)

    def whole(self, body: bytes) -> bytes:
        n = msgspec.json.decode(body).get("count") if body[:1] == b"{" else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError("not a /tokenize reply: no count")
        return reply(n)

    def feed(self, event: bytes) -> bytes:
        return b""

    def close(self) -> bytes:
        return b""

    def cut(self, status: int, message: str, code: str) -> bytes:
        return b""
