"""`eldric chat [--url URL] [--model M] [--key K] [--system S] [PROMPT]`: one reply to
PROMPT (and/or stdin) and exit, or, with neither, an interactive session with readline
editing and history, /commands, and Ctrl-C to stop a reply."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click
import msgspec

from eldric.client import settings as client_settings
from eldric.client.chat import conversation, slash
from eldric.client.chat.render import Output
from eldric.client.chat.session import ChatSession
from eldric.client.http import ApiError

INTERRUPTED = 130  # a shell's exit status for "stopped by SIGINT"


@click.command()
@click.argument("prompt", nargs=-1)
@click.option("--url", help="the endpoint (ELDRIC_URL; default the quick start's edge)")
@click.option("--model", "-m", help="the model (ELDRIC_MODEL; default the endpoint's first)")
@click.option("--key", "-k", help="the API key (ELDRIC_API_KEY)")
@click.option("--system", "-s", help="a system prompt")
@click.option("--swarm", help="ask the router for a swarm: a strategy or an ensemble")
@click.option("--continue", "-c", "resume", is_flag=True,
              help="resume the last conversation")
@click.option("--plain", is_flag=True, help="plain text, no Markdown rendering")
def chat(prompt: tuple[str, ...], url: str | None, model: str | None, key: str | None,
         system: str | None, swarm: str | None, resume: bool, plain: bool) -> None:
    """Chat with a model on eldric (or any OpenAI-compatible endpoint)."""
    import os

    try:
        cfg = client_settings.load(url=url, api_key=key, model=model)
    except client_settings.SettingsError as exc:
        _fail(str(exc))
    store = conversation.Store(client_settings.state_home(os.environ) / "eldric" / "chat")
    out = Output(plain)
    conv = _conversation(store, resume, out)
    # flags over what a resumed conversation ran with
    conv.model = model or (conv.model if resume else None) or cfg.model
    conv.system = system if system is not None else conv.system
    conv.swarm = swarm if swarm is not None else conv.swarm
    text = " ".join(prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        text = f"{text}\n\n{piped}" if text and piped.strip() else (text or piped)
    one_shot = bool(prompt) or not sys.stdin.isatty()
    session = ChatSession(cfg, store, out, conv)
    try:
        if one_shot:
            code = _once(session, text)
        else:
            code = _interactive(session, resume)
    finally:
        session.close()
    sys.exit(code)


def _fail(line: str) -> None:
    click.echo(line, err=True)
    sys.exit(1)


def _conversation(store: conversation.Store, resume: bool,
                  out: Output) -> conversation.Conversation:
    if not resume:
        return conversation.new()
    for path in store.recent():
        try:
            return store.load(path)
        except (OSError, ValueError, msgspec.MsgspecError) as exc:
            # said, not skipped silently: the user asked for the newest and gets an
            # older one; the file is left as it is (nothing saved is lost)
            out.error(f"warning: cannot read {path} ({exc}); left as it is, continuing "
                      "the next newest")
    _fail(f"error: no conversation to continue in {store.root}")
    raise AssertionError  # not reached


def _once(session: ChatSession, text: str) -> int:
    if not text.strip():
        session.out.error("error: the prompt is empty")
        return 1
    try:
        session.ensure_model()
        return 0 if session.ask(text) else 1
    except ApiError as exc:
        session.out.error(exc.line())
        return 1
    except KeyboardInterrupt:
        return INTERRUPTED


def _interactive(session: ChatSession, resumed: bool) -> int:
    _readline(session.store.root.parent / "chat-input.history")
    try:
        session.ensure_model()
    except KeyboardInterrupt:  # a model list that does not come: /model NAME still works
        print()
        session.out.note("stopped asking for the models; /model NAME names one",
                         style="yellow")
    except ApiError as exc:  # the session still starts: /model and /exit work
        session.out.error(exc.line())
    if resumed:
        slash.replay(session)
    session.out.note(f"eldric chat · {session.settings.url} · model "
                     f"{session.conv.model or '?'} · /help · Ctrl-C stops a reply, "
                     "Ctrl-D leaves")
    while True:
        try:
            line = input("> ")
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:  # at the prompt: drop the line, as a shell does
            print()
            continue
        if not line.strip():
            continue
        if line.startswith("/"):
            try:
                if slash.run(session, line) is slash.EXIT:
                    return 0
            except KeyboardInterrupt:  # a /command waiting on the endpoint (/models)
                print()
                session.out.note("[stopped]", style="yellow")
            continue
        with contextlib.suppress(KeyboardInterrupt):  # stopped: back to the prompt
            session.ask(line)


def _readline(path: Path) -> None:
    """Line editing and the input history (kept across sessions) for input()."""
    try:
        import readline  # noqa: PLC0415 (not on every platform)
    except ImportError:
        return
    import atexit  # noqa: PLC0415

    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)

    def write() -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)

    atexit.register(write)
