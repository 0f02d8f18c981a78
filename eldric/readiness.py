"""Whether a request would succeed yet: the roles' readiness hooks, watched after start-up.

Listening is not being ready: an embedded model is still loading, a router has not seen
a healthy worker, an edge has not seen a healthy router. Each role may say what it still
waits for (``Role.waiting_for``); eldric.app polls them after start-up and reports to the
caller (the CLI's banner) at once, when all are ready, and, if that takes longer than the
ready timeout, what is not ready and why (it keeps watching, more slowly, after that).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eldric.registry import Role

EVERY = 0.25  # seconds between rounds until the timeout
EVERY_AFTER_TIMEOUT = 10.0  # and after it: hooks probe their upstreams, so seldom ...
FIRST_AFTER_TIMEOUT = 1.0  # ... reached by doubling from this: a backend a little late
# is reported ready within a second or two, not up to 10 s after it came
ROUND_TIMEOUT = 6.0  # one hook's answer (a probe of a silent upstream takes up to 5 s)


@dataclass(frozen=True)
class Readiness:
    urls: dict[str, str]  # role -> where it listens
    waiting: dict[str, str] = field(default_factory=dict)  # role -> what it waits for
    timed_out: bool = False  # still waiting after the ready timeout
    elapsed: float = 0.0  # seconds since the roles were listening

    @property
    def ready(self) -> bool:
        return not self.waiting


async def waiting_for(apps: Sequence[tuple[Role, Any]]) -> dict[str, str]:
    """role name -> what it still waits for, for every role that is not ready."""
    hooked = [(role, app) for role, app in apps if role.waiting_for is not None]
    answers = await asyncio.gather(*(_ask(role, app) for role, app in hooked))
    return {role.name: why for (role, _), why in zip(hooked, answers) if why}


async def _ask(role: Role, app: Any) -> str | None:
    try:
        answer = role.waiting_for(app)  # type: ignore[misc]
        if inspect.isawaitable(answer):
            answer = await asyncio.wait_for(answer, ROUND_TIMEOUT)
        return answer
    except TimeoutError:
        return f"its readiness check did not answer within {ROUND_TIMEOUT:g} s"
    except Exception as exc:  # a broken hook must not take the process down
        return f"its readiness check failed: {type(exc).__name__}: {exc}"


async def watch(apps: Sequence[tuple[Role, Any]], urls: dict[str, str],
                report: Callable[[Readiness], None], timeout: float) -> None:
    """Report at once, then when every role is ready; if that takes longer than
    `timeout` seconds, also report what is still waited for, once."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = await waiting_for(apps)
    report(Readiness(urls, waiting, elapsed=loop.time() - started))
    timed_out = False
    pause = EVERY
    while waiting:
        await asyncio.sleep(pause)
        if timed_out:
            pause = min(pause * 2, EVERY_AFTER_TIMEOUT)
        waiting = await waiting_for(apps)
        elapsed = loop.time() - started
        if not waiting:
            report(Readiness(urls, timed_out=timed_out, elapsed=elapsed))
        elif not timed_out and elapsed >= timeout:
            timed_out = True
            pause = FIRST_AFTER_TIMEOUT
            report(Readiness(urls, waiting, timed_out=True, elapsed=elapsed))
