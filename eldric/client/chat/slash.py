"""The interactive session's /commands. Each takes the session and the rest of the line;
a command's failure is one line and the session goes on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from eldric.client.chat import conversation
from eldric.client.chat.session import ChatSession
from eldric.client.http import ApiError

EXIT = object()  # what /exit returns
HISTORY_SHOWN = 20

HELP = """\
/models            the endpoint's models; pick one by number
/model [NAME]      show or set the model
/system [TEXT|off] show, set or clear the system prompt
/new               start a new conversation
/history [N]       the saved conversations, newest first; N resumes one
/save FILE         write this conversation to FILE as Markdown
/swarm [S|off]     ask the router for a swarm (a strategy or ensemble), or stop
/exit              leave (Ctrl-D too); Ctrl-C stops a reply"""


def run(chat: ChatSession, line: str, ask: Callable[[str], str] = input) -> object:
    """Run one /command line; EXIT when the session should end. `ask` reads an answer
    (/models' pick)."""
    name, _, arg = line[1:].strip().partition(" ")
    arg = arg.strip()
    handler = COMMANDS.get(name.lower())
    if handler is None:
        chat.out.error(f"error: unknown command /{name} (/help lists them)")
        return None
    return handler(chat, arg, ask)


def _help(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    chat.out.note(HELP, style="")
    return None


def _exit(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    return EXIT


def _models(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    try:
        names = chat.models()
    except ApiError as exc:
        chat.out.error(exc.line())
        return None
    if not names:
        chat.out.note("the endpoint lists no models")
        return None
    for i, name in enumerate(names, 1):
        mark = "*" if name == chat.conv.model else " "
        chat.out.note(f"{mark} {i:>2}  {name}", style="")
    try:
        pick = ask(f"pick 1-{len(names)} (Enter keeps {chat.conv.model}): ").strip()
    except (EOFError, KeyboardInterrupt):
        return None
    if not pick:
        return None
    if not pick.isdigit() or not 1 <= int(pick) <= len(names):
        chat.out.error(f"error: {pick!r} is not a number from 1 to {len(names)}")
        return None
    return _model(chat, names[int(pick) - 1], ask)


def _model(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    if arg:
        chat.conv.model = arg
    chat.out.note(f"model: {chat.conv.model}")
    return None


def _system(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    if arg:
        chat.conv.system = None if arg == "off" else arg
    chat.out.note(f"system: {chat.conv.system or '(none)'}")
    return None


def _swarm(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    if arg:
        chat.conv.swarm = None if arg == "off" else arg
    chat.out.note(f"swarm: {chat.conv.swarm or 'off'}")
    return None


def _new(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    old = chat.conv
    chat.conv = conversation.new(old.model, old.system, old.swarm)
    chat.out.note("a new conversation")
    return None


def _history(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    files = chat.store.recent()
    if not arg:
        if not files:
            chat.out.note(f"no saved conversations in {chat.store.root}")
        for i, path in enumerate(files[:HISTORY_SHOWN], 1):
            try:
                conv = chat.store.load(path)
            except (OSError, ValueError, msgspec.MsgspecError):
                continue  # a file that is not a conversation is not listed
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
            turns = sum(m.role == "user" for m in conv.messages)
            chat.out.note(f"{i:>3}  {when}  {turns:>3} turns  {conv.title()}", style="")
        return None
    if not arg.isdigit() or not 1 <= int(arg) <= len(files):
        chat.out.error(f"error: no conversation {arg!r} (/history lists them)")
        return None
    try:
        chat.conv = chat.store.load(files[int(arg) - 1])
    except (OSError, ValueError, msgspec.MsgspecError) as exc:
        chat.out.error(f"error: cannot read {files[int(arg) - 1]}: {exc}")
        return None
    replay(chat)
    return None


def _save(chat: ChatSession, arg: str, ask: Callable[[str], str]) -> object:
    if not arg:
        chat.out.error("error: /save needs a file name")
        return None
    path = Path(arg).expanduser()
    try:
        path.write_text(chat.conv.markdown(), encoding="utf-8")
    except OSError as exc:
        chat.out.error(f"error: cannot write {path}: {exc}")
        return None
    chat.out.note(f"saved to {path}")
    return None


def replay(chat: ChatSession) -> None:
    """Show a resumed conversation's turns, then what it runs with."""
    for m in chat.conv.messages:
        chat.out.show(m.role, m.content)
    chat.out.note(f"resumed {chat.conv.id} · model {chat.conv.model}")


COMMANDS = {"help": _help, "exit": _exit, "quit": _exit, "models": _models,
            "model": _model, "system": _system, "swarm": _swarm, "new": _new,
            "history": _history, "save": _save}
