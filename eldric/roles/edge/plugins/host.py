"""The edge's table of plugins: what is in --plugins-dir, which are enabled, their
children. Loaded at start and on POST /api/v1/plugins/reload; the enabled set is kept
in <plugins-dir>/enabled.json (a plugin dropped into the directory starts disabled:
the admin turns it on).

The request path asks one thing of it, `filters` (empty: no filter enabled, the edge
relays as if there were no plugins), and for a model, filters_for(model): the enabled
filters whose applies_to globs match, in priority order, computed once per model name.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from eldric import tasks
from eldric.roles.edge.plugins.manifest import SERVER_SIDE, Manifest, load
from eldric.roles.edge.plugins.process import PluginError, PluginProcess
from eldric.roles.edge.plugins.valves import Valves, check_schema

PAGE_SIDE = ("action", "widget")  # the chat page's JavaScript, served by static.py

log = structlog.get_logger("eldric.edge.plugins")

ENABLED_FILE = "enabled.json"
MODELS_KEPT = 1024  # model names whose filters filters_for remembers


@dataclass
class Plugin:
    id: str
    directory: Path
    manifest: Manifest | None = None
    error: str | None = None  # why it cannot run (a bad manifest, a bad schema)
    enabled: bool = False
    valves: Valves | None = None
    process: PluginProcess | None = None  # server-side ones only
    token: str = field(default_factory=lambda: "sk-plugin-" + secrets.token_urlsafe(24))
    skipped: int = 0  # fail_mode open: requests that went on without this filter

    @property
    def client_name(self) -> str:
        return f"plugin:{self.id}"

    @property
    def offer(self) -> str:
        """A tool plugin's: "always" or "request" (tools.offered), its valve `offer` if
        it has one (the admin switches it without editing the manifest), else the
        manifest's."""
        v = self.valves.values.get("offer") if self.valves is not None else None
        if v in ("always", "request"):
            return str(v)
        return self.manifest.offer if self.manifest is not None else "request"

    def hooks(self) -> set[str]:
        """The filter hooks the child said it has (initialize's "hooks"); all three
        until it said (a child not using eldric.plugin may not say)."""
        info = self.process.info if self.process else {}
        said = info.get("hooks")
        return set(said) if isinstance(said, list) else {"inlet", "outlet", "stream"}

    def status(self) -> dict[str, Any]:
        m = self.manifest
        out: dict[str, Any] = {"id": self.id, "enabled": self.enabled, "error": self.error}
        if m is not None:
            out.update(name=m.name, version=m.version, type=m.type, priority=m.priority,
                       timeout_ms=m.timeout_ms, applies_to=m.applies_to,
                       fail_mode=m.fail_mode, description=m.description)
            if m.type == "tool":
                out["offer"] = self.offer
        if self.valves is not None and self.valves.error:
            out["valves_error"] = self.valves.error
        p = self.process
        out["state"] = p.state if p is not None else ("page" if m and self.enabled else "stopped")
        if p is not None:
            out.update(p.stats.as_dict(), skipped=self.skipped,
                       tools=[t.get("function", {}).get("name") for t in p.info.get("tools", [])
                              if isinstance(t, dict)],
                       models=p.info.get("models", []))
        return out


class Plugins:
    def __init__(self, directory: Path, *, max_failures: int = 3) -> None:
        self.directory = directory
        self.max_failures = max_failures
        self.edge_url = ""  # set when the edge knows where it listens
        self.edge_cert = ""  # ... and, serving HTTPS, its certificate (PEM, no key)
        self.table: dict[str, Plugin] = {}
        self.filters: list[Plugin] = []  # enabled, runnable filters, priority order
        self.tokens: dict[str, Plugin] = {}  # the children's keys into the edge
        self.tools: list[Plugin] = []  # enabled, runnable tool plugins
        self.pipes: list[Plugin] = []  # ... pipe plugins (their models are virtual ones)
        self.page: list[Plugin] = []  # ... action and widget plugins (the chat page's)
        self.mcp: list[Any] = []  # MCP servers (plugins/mcp.McpServer), set by the edge
        self.active = False  # any filter, tool or pipe: the request path asks only this
        self._by_model: dict[str, tuple[Plugin, ...]] = {}
        self._lock = asyncio.Lock()

    # --- the directory -----------------------------------------------------------------

    def _enabled_ids(self) -> set[str]:
        try:
            ids = json.loads((self.directory / ENABLED_FILE).read_text())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as e:
            log.warning("plugins_enabled_unreadable", error=repr(e))
            return set()
        return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()

    def _save_enabled(self) -> None:
        ids = sorted(p.id for p in self.table.values() if p.enabled)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".enabled-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(ids, f)
        os.replace(tmp, self.directory / ENABLED_FILE)

    async def reload(self) -> dict[str, list[str]]:
        """Read the directory again: new plugins added, gone ones stopped and removed,
        changed manifests taken (their child restarted). Returns what changed."""
        async with self._lock:
            enabled = self._enabled_ids()
            seen: dict[str, Plugin] = {}
            try:
                dirs = sorted(d for d in self.directory.iterdir() if d.is_dir()
                              and not d.name.startswith("."))
            except OSError as e:  # no directory (yet), or unreadable: no plugins, said why
                if not isinstance(e, FileNotFoundError):
                    log.warning("plugins_dir_unreadable", directory=str(self.directory),
                                error=e.strerror or repr(e))
                dirs = []
            for d in dirs:
                seen[d.name] = self._read(d, d.name in enabled)
            changed: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
            for pid, old in list(self.table.items()):
                new = seen.get(pid)
                if new is None:
                    changed["removed"].append(pid)
                    await self._stop(old)
                    del self.table[pid]
                elif new.manifest != old.manifest or new.error != old.error:
                    changed["changed"].append(pid)
                    await self._stop(old)
                    self.table[pid] = new
                else:
                    old.valves = new.valves  # valves.json may have been edited by hand
            for pid, new in seen.items():
                if pid not in self.table:
                    changed["added"].append(pid)
                    self.table[pid] = new
            self._index()
            for p in self.table.values():
                if p.enabled and p.process is None:
                    self._make_process(p)
                    self._start_soon(p)
            return changed

    def _read(self, d: Path, enabled: bool) -> Plugin:
        p = Plugin(id=d.name, directory=d, enabled=enabled)
        m = load(d)
        if isinstance(m, str):
            p.error = m
            log.warning("plugin_manifest_bad", plugin=d.name, error=m)
            return p
        p.manifest = m
        p.error = check_schema(m.valves) if m.valves else None
        if p.error is None:
            p.valves = Valves(m.valves, d / "valves.json")
        return p

    def _index(self) -> None:
        self._by_model.clear()
        self.filters = sorted(
            (p for p in self.table.values() if p.enabled and p.manifest is not None
             and p.error is None and p.manifest.type == "filter"),
            key=lambda p: (p.manifest.priority if p.manifest else 0, p.id))
        self.tokens = {p.token: p for p in self.table.values()
                       if p.enabled and p.process is not None}
        runnable = [p for p in sorted(self.table.values(), key=lambda p: p.id)
                    if p.enabled and p.manifest is not None and p.error is None]
        self.tools = [p for p in runnable if p.manifest and p.manifest.type == "tool"]
        self.pipes = [p for p in runnable if p.manifest and p.manifest.type == "pipe"]
        self.page = [p for p in runnable if p.manifest and p.manifest.type in PAGE_SIDE]
        self.active = bool(self.filters or self.tools or self.pipes or self.mcp)

    def filters_for(self, model: str | None) -> tuple[Plugin, ...]:
        key = model or ""
        found = self._by_model.get(key)
        if found is None:
            if len(self._by_model) >= MODELS_KEPT:
                # the name is the client's: a client sending endless made-up names must
                # not grow this without bound (the globs are matched again, that is all)
                self._by_model.clear()
            found = self._by_model[key] = tuple(
                p for p in self.filters if p.manifest is not None
                and any(fnmatch.fnmatchcase(key, g) for g in p.manifest.applies_to))
        return found

    # --- children ----------------------------------------------------------------------

    def _make_process(self, p: Plugin) -> None:
        m = p.manifest
        if m is None or p.error is not None or m.type not in SERVER_SIDE:
            return

        def init() -> dict[str, Any]:  # read at every (re)start: the current valves
            return {"manifest": _manifest_dict(m), "edge_url": self.edge_url,
                    "edge_cert": self.edge_cert, "token": p.token,
                    "valves": p.valves.values if p.valves else {}}

        p.process = PluginProcess(p.id, p.directory, entry=m.entry, timeout_ms=m.timeout_ms,
                                  init=init, max_failures=self.max_failures)
        self._index()

    def _start_soon(self, p: Plugin) -> None:
        """Start the child in the background (the edge never waits for it), or, for a
        lazy one, let its first call start it."""
        proc = p.process
        if proc is None or p.manifest is None:
            return
        if p.manifest.start == "lazy":
            proc.arm()
            return

        async def start() -> None:
            try:
                await proc.start()
            except PluginError:
                pass  # logged; the supervisor keeps trying with backoff

        tasks.spawn(start(), name=f"plugin-boot-{p.id}")

    async def _stop(self, p: Plugin) -> None:
        if p.process is not None:
            await p.process.stop()
            p.process = None

    async def set_enabled(self, pid: str, on: bool) -> Plugin:
        async with self._lock:
            p = self.table[pid]
            if on == p.enabled:
                return p
            p.enabled = on
            self._save_enabled()
            if on:
                self._make_process(p)
                self._start_soon(p)
            else:
                await self._stop(p)
            self._index()
            log.info("plugin_enabled" if on else "plugin_disabled", plugin=pid)
            return p

    async def set_valves(self, pid: str, new: dict[str, Any]) -> dict[str, Any]:
        """Check, store and hand the child the new valves; the masked values."""
        p = self.table[pid]
        assert p.valves is not None
        values = p.valves.update(new)
        if p.process is not None and p.process.running:
            try:
                await p.process.call("valves", {"valves": values})
            except PluginError as e:  # stored; it gets them at its next start anyway
                log.warning("plugin_valves_not_taken", plugin=pid, error=str(e))
        return p.valves.masked()

    async def stop(self) -> None:
        """Every child, at once (each may take its grace period to exit)."""
        await asyncio.gather(*(self._stop(p) for p in list(self.table.values())),
                             *(s.stop() for s in self.mcp))

    def start_mcp(self, configs: list[Any]) -> None:
        """The enabled MCP servers, started in the background (the edge never waits for
        one: a server down at start is `down` in the status and retried)."""
        if not any(c.enabled for c in configs):
            return
        from eldric.roles.edge.plugins.mcp import McpServer  # the extra, only when used

        self.mcp = [McpServer(c) for c in configs if c.enabled]
        for s in self.mcp:
            s.start_soon()
        self._index()


def _manifest_dict(m: Manifest) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(m)  # type: ignore[no-any-return]
