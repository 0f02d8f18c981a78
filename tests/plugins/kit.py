"""Helpers of the plugin tests: a plugins directory made of the shipped examples (and a
test's own plugins), enabled as the edge keeps it (enabled.json); a router in front of
scripted backends; the edge in front of it with the plugins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_eldric
from tests.roles.plugin_kit import EXAMPLES, write_plugin

KEY = "sk-plugins-test"  # the edge's client key, unless a test gives its own
AUTH = {"Authorization": f"Bearer {KEY}"}


def plugins_dir(tmp_path: Path, *examples: str, own: dict[str, tuple[dict, str]] | None = None,
                enabled: tuple[str, ...] | None = None) -> Path:
    """A plugins dir with copies of these examples and `own` plugins (id -> (manifest,
    main.py text)); all enabled unless `enabled` says which."""
    d = tmp_path / "plugins"
    d.mkdir(parents=True, exist_ok=True)
    for name in examples:
        shutil.copytree(EXAMPLES / name, d / name)
        _offer_always(d / name / "manifest.json")
    for pid, (manifest, main) in (own or {}).items():
        write_plugin(d, pid, main, **manifest)
        _offer_always(d / pid / "manifest.json")
    on = [*examples, *(own or {})] if enabled is None else list(enabled)
    (d / "enabled.json").write_text(json.dumps(sorted(on)))
    return d


def _offer_always(path: Path) -> None:
    """Tool plugins here offer their tools to every request (the shipped default is
    only to requests that ask: tests/plugins/test_tool_offer.py), unless told."""
    m = json.loads(path.read_text())
    if m.get("type") == "tool":
        m.setdefault("offer", "always")
        path.write_text(json.dumps(m))


def router(tmp_path, *urls, **flags):  # type: ignore[no-untyped-def]
    return run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                      workers=",".join(urls), health_interval=60_000, **flags)


def edge(tmp_path, router_url: str, plugins: Path, **flags):  # type: ignore[no-untyped-def]
    flags.setdefault("api_key", KEY)
    return run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                      routers=router_url, plugins_dir=str(plugins), **flags)
