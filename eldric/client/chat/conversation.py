"""A conversation (its messages and the settings it was held with) and where it is kept:
one JSON file per conversation in `$XDG_STATE_HOME/eldric/chat/`, rewritten after each
reply, so `--continue` (the newest file) and `/history` can bring it back."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import msgspec


class Message(msgspec.Struct):
    role: str
    content: str


class Conversation(msgspec.Struct, kw_only=True):
    id: str
    created: float
    model: str | None = None
    system: str | None = None
    swarm: str | None = None
    messages: list[Message] = msgspec.field(default_factory=list)

    def wire(self) -> list[dict[str, str]]:
        """The messages as the request carries them, the system prompt first."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": m.role, "content": m.content} for m in self.messages]

    def title(self) -> str:
        first = next((m.content for m in self.messages if m.role == "user"), "")
        return " ".join(first.split())[:60] or "(empty)"

    def markdown(self) -> str:
        """The conversation as a Markdown document (/save)."""
        out = [f"# {self.title()}", ""]
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        out += [f"*{stamp} · model {self.model or '?'}*", ""]
        if self.system:
            out += ["## System", "", self.system, ""]
        for m in self.messages:
            out += [f"## {m.role.capitalize()}", "", m.content, ""]
        return "\n".join(out)


def new(model: str | None = None, system: str | None = None,
        swarm: str | None = None) -> Conversation:
    now = time.time()
    ident = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + secrets.token_hex(3)
    return Conversation(id=ident, created=now, model=model, system=system, swarm=swarm)


class Store:
    """The conversations' directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, conv: Conversation) -> Path:
        return self.root / f"{conv.id}.json"

    def save(self, conv: Conversation) -> None:
        """Write the file whole (a temporary file renamed over it): a chat stopped mid-way
        never leaves half a JSON file behind. An empty conversation is not kept."""
        if not conv.messages:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{conv.id}.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(conv)))
        os.replace(tmp, self.path(conv))

    def recent(self) -> list[Path]:
        """The conversations' files, newest first."""
        try:
            files = [p for p in self.root.glob("*.json") if p.is_file()]
        except OSError:
            return []
        return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)

    def load(self, path: Path) -> Conversation:
        return msgspec.json.decode(path.read_bytes(), type=Conversation)
