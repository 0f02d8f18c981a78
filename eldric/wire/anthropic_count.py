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
