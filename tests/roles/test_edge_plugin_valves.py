"""Valves (unit): the mask sent back for a secret never set is not stored as the
secret (the plugin would get "********" as its key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eldric.roles.edge.plugins.valves import MASK, BadValves, Valves

SCHEMA = {"type": "object", "properties": {
    "api_key": {"type": "string", "format": "password"},
    "level": {"type": "integer", "default": 1}}}


def test_the_mask_for_a_secret_never_set_stores_no_secret(tmp_path: Path) -> None:
    v = Valves(SCHEMA, tmp_path / "valves.json")
    assert v.update({"api_key": MASK, "level": 2}) == {"level": 2}
    assert "api_key" not in (tmp_path / "valves.json").read_text()
    v.update({"api_key": "sk-real", "level": 2})
    assert v.update({"api_key": MASK, "level": 3})["api_key"] == "sk-real"  # kept
    required = {**SCHEMA, "required": ["api_key"]}
    w = Valves(required, tmp_path / "other.json")
    with pytest.raises(BadValves) as e:  # required and never given: said so, not masked in
        w.update({"api_key": MASK})
    assert e.value.field == "api_key"


async def test_a_required_valve_not_yet_set_does_not_break_loading(tmp_path: Path) -> None:
    """A schema requiring a valve with no default (an API key), before anyone set it:
    the plugins directory loads (the edge starts), the plugin says why, a PUT sets it."""
    import json

    from eldric.roles.edge.plugins.host import Plugins

    d = tmp_path / "needs-key"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({
        "id": "needs-key", "name": "n", "type": "filter",
        "valves": {**SCHEMA, "required": ["api_key"]}}))
    (d / "main.py").write_text("")
    host = Plugins(tmp_path)
    assert (await host.reload())["added"] == ["needs-key"]
    st = host.table["needs-key"].status()
    assert "api_key" in st["valves_error"] and st["error"] is None
    assert host.table["needs-key"].valves.update({"api_key": "sk-1"})["api_key"] == "sk-1"
