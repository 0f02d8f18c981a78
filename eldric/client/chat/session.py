"""A chat session: the endpoint, the conversation held with it, and one event loop (and
one HTTP connection pool) for all its replies. Each reply runs as the loop's main task,
so Ctrl-C cancels exactly that reply (asyncio.Runner turns SIGINT into a cancel), the
connection closes, and the session goes on."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from eldric.client.chat import conversation, reply
from eldric.client.chat.render import Output
from eldric.client.http import ApiError, call
from eldric.client.settings import Settings


class ChatSession:
    def __init__(self, settings: Settings, store: conversation.Store, out: Output,
                 conv: conversation.Conversation) -> None:
        self.settings, self.store, self.out, self.conv = settings, store, out, conv
        self.runner = asyncio.Runner()
        self.http: aiohttp.ClientSession | None = None

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def close(self) -> None:
        if self.http is not None:
            self.run(self.http.close())
        self.runner.close()

    async def _http(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        return self.http

    def models(self) -> list[str]:
        """The endpoint's /v1/models ids; raises ApiError."""
        async def get() -> Any:
            return await call(await self._http(), "GET", self.settings.url + "/v1/models",
                              key=self.settings.api_key)

        body = self.run(get())
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ApiError(200, "bad_reply", "/v1/models has no `data` list",
                           self.settings.url)
        return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]

    def ensure_model(self) -> None:
        """With no model named, the endpoint's first; raises ApiError."""
        if self.conv.model:
            return
        names = self.models()
        if not names:
            raise ApiError(200, "no_models", "the endpoint lists no models; name one "
                           "with --model", self.settings.url)
        self.conv.model = names[0]

    def ask(self, text: str) -> bool:
        """Send one user message and stream the answer. False when it failed (the line
        was shown, the message not kept); a stopped reply keeps what had arrived.
        KeyboardInterrupt (the reply stopped) is raised again after the note, for the
        one-shot caller to exit on; interactive callers catch it."""
        conv = self.conv
        conv.messages.append(conversation.Message("user", text))
        got = reply.Reply()
        self.out.begin()

        async def go() -> reply.Reply:
            return await reply.stream(await self._http(), self.settings.url,
                                      key=self.settings.api_key, model=conv.model,
                                      messages=conv.wire(), swarm=conv.swarm, reply=got,
                                      on_text=self.out.piece)

        try:
            self.run(go())
        except KeyboardInterrupt:
            self.out.end()
            self._keep(got)
            self.out.note(f"[stopped] {got.stats()}", style="yellow")
            raise
        except ApiError as exc:
            self.out.end()
            self._keep(got)
            self.out.error(exc.line())
            return False
        self.out.end()
        self._keep(got)
        self.out.note(got.stats())
        return True

    def _keep(self, got: reply.Reply) -> None:
        """The answer (or what of it came) after the question; a question with no
        answer at all is dropped, so the conversation goes on question, answer, …"""
        if got.text:
            self.conv.messages.append(conversation.Message("assistant", got.text))
        else:
            self.conv.messages.pop()
        try:
            if self.store.save(self.conv):
                self.out.note("another session saved this conversation meanwhile; this "
                              f"one goes on in a new file, {self.store.path(self.conv)}",
                              style="yellow")
        except OSError as exc:
            self.out.error(f"error: cannot save the conversation: {exc}")
