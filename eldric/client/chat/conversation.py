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
        # conversation id -> its file's (inode, mtime, size) as this session last read or
        # wrote it: a file that changed since was saved by another session
        self.seen: dict[str, tuple[int, int, int]] = {}

    def path(self, conv: Conversation) -> Path:
        return self.root / f"{conv.id}.json"

    def save(self, conv: Conversation) -> bool:
        """Write the file whole (a temporary file of this process's own renamed over it):
        a chat stopped mid-way never leaves half a JSON file behind. An empty conversation
        is not kept. When another session saved the same conversation since this one read
        it (two terminals `--continue`d it), this one goes on under a new id rather than
        overwrite the other's turns: True then."""
        if not conv.messages:
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        forked = False
        now = _stat(self.path(conv))
        if now is not None and now != self.seen.get(conv.id):
            conv.id, forked = new().id, True
        tmp = self.root / f".{conv.id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_bytes(msgspec.json.format(msgspec.json.encode(conv)))
            os.replace(tmp, self.path(conv))
        finally:
            tmp.unlink(missing_ok=True)
        if (done := _stat(self.path(conv))) is not None:
            self.seen[conv.id] = done
        return forked

    def recent(self) -> list[Path]:
        """The conversations' files, newest first."""
        try:
            files = [p for p in self.root.glob("*.json") if p.is_file()]
        except OSError:
            return []
        return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)

    def load(self, path: Path) -> Conversation:
        before = _stat(path)
        conv = msgspec.json.decode(path.read_bytes(), type=Conversation)
        if before is not None and path == self.path(conv):
            self.seen[conv.id] = before
        return conv


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
