"""The plugins table's per-model memory of which filters apply: the model name is the
client's, so made-up names must not grow it without bound."""

from __future__ import annotations

from pathlib import Path

from eldric.roles.edge.plugins.host import MODELS_KEPT, Plugin, Plugins
from eldric.roles.edge.plugins.manifest import Manifest


def test_filters_for_stays_bounded_under_made_up_model_names(tmp_path: Path) -> None:
    host = Plugins(tmp_path)
    f = Plugin("f", tmp_path, manifest=Manifest(id="f", name="f", type="filter",
                                                applies_to=["m-*"]), enabled=True)
    host.table["f"] = f
    host._index()
    for i in range(MODELS_KEPT * 3):
        assert host.filters_for(f"m-{i}") == (f,)
        assert host.filters_for(f"x-{i}") == ()
    assert len(host._by_model) <= MODELS_KEPT
    assert host.filters_for("m-again") == (f,) and host.filters_for(None) == ()
