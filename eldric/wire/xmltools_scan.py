"""Finding ``<tool_call>{…}</tool_call>`` blocks in a model's text as it streams.

The scanner is fed the reply's text in whatever pieces the backend sent and gives back,
at once, what may go to the client: text before a block goes out as it comes; a block is
held until it closes, then becomes a tool call (or, malformed, goes out as the text it
was); a partial ``<tool_call>`` at a piece's end is held back until the next piece says
whether it is one. Text after the first tool call is dropped: it is the model guessing
the tool's result, which the client is about to supply (the same rule as the Hermes
parsers of vLLM and SGLang: content is what precedes the calls).

Pure, no I/O; eldric.wire.xmltools puts it to work on whole replies and streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

_decode = msgspec.json.decode
_encode = msgspec.json.encode


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str  # the arguments object, JSON-encoded (OpenAI's function.arguments)


Piece = str | Call  # what the scanner releases: text for the client, or a call


def parse_call(block: str, names: frozenset[str]) -> Call | None:
    """A block's JSON as a call: ``{"name": str, "arguments": {…}}`` (arguments may be a
    JSON string holding the object, as some models write it; absent: no arguments).
    None for anything else, a tool the request did not offer included."""
    try:
        obj = _decode(block.strip().encode())
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", {})
    if isinstance(args, str):
        try:
            args = _decode(args.encode()) if args.strip() else {}
        except msgspec.DecodeError:
            return None
    if not isinstance(args, dict) or obj["name"] not in names:
        return None
    return Call(obj["name"], _encode(args).decode())


def _held_back(text: str) -> int:
    """How many characters at the end of `text` may begin ``<tool_call>``."""
    for n in range(min(len(text), len(OPEN) - 1), 0, -1):
        if OPEN.startswith(text[-n:]):
            return n
    return 0


class Scanner:
    """One reply's text in, Pieces out (see the module's docstring).

    ``prefix`` is text the request put in the model's mouth (an assistant message it
    continues: eldric.wire.xmltools' prefill). Some servers echo it at the start of the
    reply (llama.cpp does), some do not: the scanner reads the reply's first characters
    to tell, and scans the prefix and the reply as one text either way."""

    __slots__ = ("_names", "_buf", "_in_block", "_calls", "_prefix", "_echo")

    def __init__(self, names: frozenset[str], prefix: str = ""):
        self._names = names
        self._buf = ""
        self._in_block = False
        self._calls = 0
        self._prefix = prefix
        self._echo = ""  # the reply's first characters while they may still echo prefix

    @property
    def calls(self) -> int:
        return self._calls

    def feed(self, text: str) -> list[Piece]:
        if self._prefix:
            self._echo += text
            if self._prefix.startswith(self._echo):  # all of it may still be the echo
                return []
            echoed = self._echo.startswith(self._prefix)
            text = self._echo if echoed else self._prefix + self._echo
            self._prefix = self._echo = ""
        self._buf += text
        return self._scan(False)

    def close(self) -> list[Piece]:
        """The reply's text ended: what the scanner still holds."""
        if self._prefix:  # the reply was (at most) the echo: the prefix alone is the text
            self._buf += self._prefix
            self._prefix = self._echo = ""
        return self._scan(True)

    def _scan(self, end: bool) -> list[Piece]:
        out: list[Piece] = []
        while self._buf:
            if not self._in_block:
                at = self._buf.find(OPEN)
                if at < 0:
                    keep = 0 if end else _held_back(self._buf)
                    self._text(out, self._buf[:len(self._buf) - keep])
                    self._buf = self._buf[len(self._buf) - keep:]
                    break
                self._text(out, self._buf[:at])
                self._buf = self._buf[at + len(OPEN):]
                self._in_block = True
            at = self._buf.find(CLOSE)
            if at < 0 and not end:
                break  # held until it closes
            # an unclosed block at the end: a call if it is a whole one (the model
            # stopped at its end-of-turn token before writing the closing tag)
            block = self._buf if at < 0 else self._buf[:at]
            self._buf = "" if at < 0 else self._buf[at + len(CLOSE):]
            self._in_block = False
            call = parse_call(block, self._names)
            if call is not None:
                self._calls += 1
                out.append(call)
            else:  # malformed, or a tool not offered: the text it was
                self._text(out, OPEN + block + ("" if at < 0 else CLOSE))
        return out

    def _text(self, out: list[Piece], text: str) -> None:
        if text and not self._calls:
            out.append(text)
