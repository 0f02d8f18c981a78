"""One plugin's child process, supervised: the edge's side of the JSON-RPC wire.

`python main.py` in the plugin's directory (with `sys.executable`, and eldric's own tree
first on PYTHONPATH so `from eldric import plugin` is this edge's module), stdin/stdout
the protocol (eldric/plugin.py, docs/plugins.md), stderr to the edge log with the plugin
id. Every call has a deadline; a call that misses it is cancelled (a `cancel`
notification to the child) and counted. The child is restarted with backoff after it
dies, and killed and restarted after `max_failures` failures in a row (a child that
hangs or lies is as useless as a dead one). While it is down, calls fail at once
(PluginDown) rather than wait: the caller follows the plugin's fail_mode, never a hang.

Nothing here knows what a filter or a tool is beyond the reply shape each method must
have (SHAPES): a reply of any other shape, a reply to an id never sent, a line that is
not JSON are failures of a call, counted, never a crash of the edge.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog

import eldric
from eldric import tasks
from eldric.plugin import REFUSED

log = structlog.get_logger("eldric.edge.plugins")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_LINE_LIMIT = 64 * 1024 * 1024  # one reply line: a whole chat completion body fits
_ELDRIC_ROOT = str(Path(eldric.__file__).resolve().parent.parent)


class PluginError(Exception):
    """A call did not produce a usable answer: the caller follows fail_mode."""

    kind = "failed"


class PluginDown(PluginError):
    kind = "down"


class PluginTimeout(PluginError):
    kind = "timeout"


class PluginBadReply(PluginError):
    kind = "bad_reply"


class PluginRefusal(Exception):
    """The plugin refused the request on purpose (an inlet's plugin.refuse()): not a
    failure, the client gets `status` with `reason`."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status if status in (400, 403) else 403


def _is(kind: type | tuple[type, ...], none_ok: bool = False) -> Callable[[Any], bool]:
    return lambda v: (none_ok and v is None) or isinstance(v, kind)


# What each method's result must hold: key -> check. Anything else is a bad reply.
SHAPES: dict[str, dict[str, Callable[[Any], bool]]] = {
    "initialize": {"tools": _is(list), "models": _is(list)},
    "inlet": {"body": _is(dict)},
    "outlet": {"body": _is(dict)},
    "stream": {"event": _is(dict, none_ok=True)},
    "tool": {"content": _is(str)},
    "pipe": {"content": _is(str)},
    "valves": {},
}


class Stats:
    """What the status API shows of one process."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.timeouts = 0
        self.bad_replies = 0
        self.refusals = 0
        self.restarts = 0
        self.consecutive = 0
        self.last_error = ""
        self.latencies: deque[float] = deque(maxlen=512)

    def p50_ms(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return round(ordered[len(ordered) // 2] * 1000, 3)

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "failures": self.failures, "timeouts": self.timeouts,
                "bad_replies": self.bad_replies, "refusals": self.refusals,
                "restarts": self.restarts, "consecutive_failures": self.consecutive,
                "p50_ms": self.p50_ms(), "last_error": self.last_error}


class PluginProcess:
    """A supervised child. start() spawns it and runs initialize; call() sends one call
    and waits for its reply within the deadline; stop() ends it for good (disable, edge
    shutdown). After a crash it comes back by itself after a backoff."""

    def __init__(self, plugin_id: str, directory: Path, *, entry: str = "main.py",
                 timeout_ms: int = 2000, init: Callable[[], dict[str, Any]] | None = None,
                 max_failures: int = 3, backoff_ms: tuple[int, int] = (200, 30_000),
                 stable_ms: int = 10_000, start_timeout_ms: int = 15_000) -> None:
        self.id = plugin_id
        self.directory = directory
        self.entry = entry
        self.timeout_ms = timeout_ms
        self._init = init or dict  # -> initialize's params, read at each (re)start
        self.max_failures = max_failures
        self.backoff_min, self.backoff_max = backoff_ms
        self.stable_ms = stable_ms
        # initialize's deadline: a Python child's start-up (imports) on a busy host takes
        # far longer than the calls a filter's timeout_ms is meant for
        self.start_timeout_ms = max(start_timeout_ms, timeout_ms)
        self.stats = Stats()
        self.info: dict[str, Any] = {"tools": [], "models": []}  # initialize's result
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], str,
                                       Callable[[dict[str, Any]], None] | None]] = {}
        self._next_id = 0
        self._readers: list[asyncio.Task[Any]] = []
        self._restart: asyncio.Task[Any] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._stopped = True
        self._backoff = self.backoff_min
        self._started_at = 0.0

    # --- life cycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and not self._starting

    @property
    def state(self) -> str:
        if self._stopped:
            return "stopped"
        if self.running:
            return "running"
        if self._restart is not None:
            return "restarting"
        return "starting" if self._starting is not None else "idle"  # idle: lazy, unstarted

    def arm(self) -> None:
        """Started lazily: the first call starts it (start="lazy" in the manifest)."""
        self._stopped = False

    async def start(self) -> None:
        """Spawn and initialize; raises PluginError when the child will not come up (the
        supervisor keeps trying with backoff)."""
        self._stopped = False
        if self.running:
            return
        if self._starting is None:
            # not tasks.spawn: a failed start is the callers' exception (already logged
            # as plugin_start_failed), not an unexpected task failure
            self._starting = asyncio.get_running_loop().create_task(
                self._start_once(), name=f"plugin-start-{self.id}")
            self._starting.add_done_callback(lambda t: t.cancelled() or t.exception())
        # shielded: a caller that gives up does not cancel the start others wait on
        await asyncio.shield(self._starting)

    async def _start_once(self) -> None:
        try:
            await self._spawn()
        finally:
            self._starting = None

    async def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ELDRIC_ROOT, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env["ELDRIC_PLUGIN"] = self.id  # eldric.plugin, imported, keeps stdout for the wire
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, self.entry, cwd=self.directory, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=_LINE_LIMIT,
                start_new_session=True)  # the edge stops its children itself, Ctrl-C or not
        except OSError as e:
            self._failed_start(f"cannot start: {e}")
            raise PluginDown(f"plugin {self.id} cannot start: {e}") from e
        proc = self._proc
        self._started_at = time.monotonic()
        self._readers = [tasks.spawn(self._read_stdout(proc), name=f"plugin-out-{self.id}"),
                         tasks.spawn(self._read_stderr(proc), name=f"plugin-err-{self.id}")]
        log.info("plugin_started", plugin=self.id, pid=proc.pid)
        try:
            self.info = await self._send("initialize", self._init(), self.start_timeout_ms,
                                         None)
        except (PluginError, PluginRefusal) as e:
            self._failed_start(f"initialize failed: {e}")
            await self._kill(proc)
            raise PluginDown(f"plugin {self.id} did not initialize: {e}") from e

    def _failed_start(self, why: str) -> None:
        self.stats.last_error = why
        log.warning("plugin_start_failed", plugin=self.id, error=why)
        self._schedule_restart()

    async def stop(self) -> None:
        """Stop for good: no restart until start() again."""
        self._stopped = True
        await tasks.cancel(self._restart)
        self._restart = None
        if self._starting is not None:
            await tasks.cancel(self._starting)
            self._starting = None
        if self._proc is not None:
            await self._kill(self._proc)
            self._proc = None
        self._fail_pending(PluginDown(f"plugin {self.id} stopped"))

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """Close stdin (the child's cue to exit), then TERM, then KILL."""
        if proc.returncode is None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 1.0)
            except (asyncio.TimeoutError, OSError):
                for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
                    try:
                        proc.send_signal(sig)
                        await asyncio.wait_for(proc.wait(), wait)
                        break
                    except ProcessLookupError:
                        break
                    except asyncio.TimeoutError:
                        continue
        for reader in self._readers:
            await tasks.cancel(reader)
        self._readers = []

    def _schedule_restart(self) -> None:
        if self._stopped or self._restart is not None:
            return
        delay = self._backoff / 1000
        self._backoff = min(self._backoff * 2, self.backoff_max)
        self._restart = tasks.spawn(self._restart_after(delay), name=f"plugin-restart-{self.id}")

    async def _restart_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._restart = None
        if self._stopped:
            return
        self.stats.restarts += 1
        log.info("plugin_restarting", plugin=self.id, restarts=self.stats.restarts)
        try:
            await self.start()
        except PluginError:
            pass  # _failed_start has scheduled the next try

    def _died(self, proc: asyncio.subprocess.Process) -> None:
        """The child's stdout closed: it exited or crashed."""
        if proc is not self._proc:
            return
        self._proc = None
        self._fail_pending(PluginDown(f"plugin {self.id} exited"))
        if self._stopped:
            return
        uptime = time.monotonic() - self._started_at
        if uptime * 1000 >= self.stable_ms:
            self._backoff = self.backoff_min  # it ran fine for a while: a fresh crash
        self.stats.last_error = f"exited with {proc.returncode} after {uptime:.1f}s"
        log.warning("plugin_exited", plugin=self.id, code=proc.returncode,
                    uptime_s=round(uptime, 1))
        self._schedule_restart()

    async def _recycle(self, why: str) -> None:
        """Too many failures in a row: kill it; _died brings it back with backoff."""
        proc = self._proc
        if proc is None or self._stopped:
            return
        log.warning("plugin_recycled", plugin=self.id, reason=why)
        self.stats.consecutive = 0
        await self._kill(proc)
        self._died(proc)

    # --- calls -----------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any], timeout_ms: int | None = None,
                   *, notify: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """One call: its result (checked against SHAPES), or PluginError (down, timed
        out, bad reply, the handler raised) or PluginRefusal. `notify` gets the params
        of the child's notifications for this call (a pipe's chunks) as they come."""
        started = time.monotonic()
        try:
            if self._stopped:
                raise PluginDown(f"plugin {self.id} is disabled")
            deadline = timeout_ms or self.timeout_ms
            if not self.running:
                if self._restart is not None:
                    raise PluginDown(f"plugin {self.id} is restarting")
                try:  # a call waits for a start no longer than for its answer
                    await asyncio.wait_for(self.start(), deadline / 1000)
                except asyncio.TimeoutError:
                    raise PluginDown(f"plugin {self.id} is still starting") from None
                deadline = max(1, deadline - int((time.monotonic() - started) * 1000))
            result = await self._send(method, params, deadline, notify)
        except PluginError as e:
            self._count_failure(e)
            raise
        except PluginRefusal:
            self.stats.calls += 1
            self.stats.refusals += 1
            self.stats.consecutive = 0
            raise
        self.stats.calls += 1
        self.stats.consecutive = 0
        self._backoff = self.backoff_min
        self.stats.latencies.append(time.monotonic() - started)
        return result

    def _count_failure(self, e: PluginError) -> None:
        s = self.stats
        s.calls += 1
        s.failures += 1
        s.timeouts += isinstance(e, PluginTimeout)
        s.bad_replies += isinstance(e, PluginBadReply)
        s.last_error = str(e)
        if isinstance(e, PluginDown):
            return  # the supervisor already knows
        s.consecutive += 1
        log.warning("plugin_call_failed", plugin=self.id, kind=e.kind, error=str(e))
        if s.consecutive >= self.max_failures:
            tasks.spawn(self._recycle(f"{s.consecutive} failures in a row"),
                        name=f"plugin-recycle-{self.id}")

    async def _send(self, method: str, params: dict[str, Any], timeout_ms: int,
                    notify: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise PluginDown(f"plugin {self.id} is not running")
        self._next_id += 1
        call_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (future, method, notify)
        try:
            proc.stdin.write(_encode({"jsonrpc": "2.0", "id": call_id, "method": method,
                                      "params": params}) + b"\n")
            try:
                return await asyncio.wait_for(future, timeout_ms / 1000)
            except asyncio.TimeoutError:
                self._notify_child("cancel", {"call": call_id})
                raise PluginTimeout(f"plugin {self.id}: {method} took over {timeout_ms} ms") from None
        except (ConnectionError, RuntimeError) as e:  # the child's stdin is gone
            raise PluginDown(f"plugin {self.id} is not reading: {e}") from e
        finally:
            self._pending.pop(call_id, None)

    def _notify_child(self, method: str, params: dict[str, Any]) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(_encode({"jsonrpc": "2.0", "method": method, "params": params}) + b"\n")

    def _fail_pending(self, error: PluginError) -> None:
        for future, _, _ in list(self._pending.values()):
            if not future.done():
                future.set_exception(error)

    def _fail_oldest(self, error: PluginError) -> None:
        """A line no call can own: the oldest call waiting is the one it broke."""
        for future, _, _ in self._pending.values():
            if not future.done():
                future.set_exception(error)
                return
        # no call to blame: still a failure in a row, so a child that floods stdout with
        # garbage is recycled (backoff) after max_failures lines, not logged forever
        s = self.stats
        s.bad_replies += 1
        s.last_error = str(error)
        s.consecutive += 1
        log.warning("plugin_bad_line", plugin=self.id, error=str(error))
        if s.consecutive == self.max_failures:
            tasks.spawn(self._recycle(f"{s.consecutive} bad lines in a row"),
                        name=f"plugin-recycle-{self.id}")

    # --- the child's output ------------------------------------------------------------

    async def _read_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # a line over the limit: unparseable, drop the rest of it
                    self._fail_oldest(PluginBadReply(f"plugin {self.id}: a reply line over the limit"))
                    continue
                if not line:
                    break
                if line.strip():
                    self._on_line(line)
        finally:
            await proc.wait()
            self._died(proc)

    def _on_line(self, line: bytes) -> None:
        try:
            msg = _decode(line)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except (msgspec.DecodeError, ValueError):
            self._fail_oldest(PluginBadReply(f"plugin {self.id}: not JSON-RPC: {line[:80]!r}"))
            return
        if "method" in msg and "id" not in msg:  # a notification
            params = msg.get("params")
            call = params.get("call") if isinstance(params, dict) else None
            note = self._pending.get(call) if isinstance(call, int) else None
            if note is not None and note[2] is not None and isinstance(params, dict):
                try:
                    note[2](params)
                except Exception as e:  # the consumer's problem must not kill the reader
                    log.warning("plugin_notify_failed", plugin=self.id, error=repr(e))
            return
        call_id = msg.get("id")
        entry = self._pending.get(call_id) if isinstance(call_id, int) else None
        if entry is None:
            self._fail_oldest(PluginBadReply(f"plugin {self.id}: reply to unknown id {call_id!r}"))
            return
        future, method, _ = entry
        if future.done():
            return
        error = _reply_error(self.id, method, msg)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(msg["result"])

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while True:
            try:
                line = await proc.stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            log.info("plugin_stderr", plugin=self.id,
                     line=line.decode("utf-8", "replace").rstrip()[:2000])


def _reply_error(plugin_id: str, method: str, msg: dict[str, Any]) -> Exception | None:
    """None when msg is a good reply to `method`, else what the call raises."""
    if "error" in msg:
        err = msg["error"]
        if not isinstance(err, dict):
            return PluginBadReply(f"plugin {plugin_id}: {method}: a malformed error")
        if err.get("code") == REFUSED and method == "inlet":
            data = err.get("data")
            status = data.get("status") if isinstance(data, dict) else None
            status = status if isinstance(status, int) else 403
            return PluginRefusal(str(err.get("message") or "refused by a plugin"), status)
        return PluginError(f"plugin {plugin_id}: {method} failed: {str(err.get('message'))[:300]}")
    result = msg.get("result")
    shape = SHAPES.get(method, {})
    if not isinstance(result, dict) or any(k not in result or not ok(result[k])
                                           for k, ok in shape.items()):
        return PluginBadReply(f"plugin {plugin_id}: {method}: a reply of the wrong shape")
    return None
