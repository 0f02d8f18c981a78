"""A file backend's show and file download find the models its own list names, not only
those in --models-dir: the embedded backend lists its start model (--model, anywhere on
disk), and distributing that model from it ("distribute to the rest" on the dashboard,
source "worker") or showing it was a 404 model_not_found on every target. Deleting it
stays limited to the models directory (the start model's file is not the worker's to
remove)."""

from __future__ import annotations

import json

import pytest

from eldric import gguf
from eldric.errors import ModelNotFound
from eldric.modelops.files import Files
from eldric.wire.models import LocalModel
from tests.models.workers import gguf_bytes


def _files(tmp_path, start):  # type: ignore[no-untyped-def]
    root = tmp_path / "models"
    root.mkdir()
    listed = [LocalModel(name="Start", size=start.stat().st_size, format="gguf",
                         path=str(start), loaded=True)]
    return Files(kind="embedded", root=root, session=lambda: None,  # type: ignore[arg-type,return-value]
                 describe=lambda p: gguf.scalars(str(p)), listing=lambda: listed)


async def test_the_start_model_outside_the_models_dir_is_shown_and_served(tmp_path):
    start = tmp_path / "elsewhere" / "Start-Q4_1.gguf"
    start.parent.mkdir()
    start.write_bytes(gguf_bytes(architecture="llama", template="{% t %}", filler=10))
    files = _files(tmp_path, start)
    assert files.file("Start") == start
    shown = json.loads((await files.show("Start")).body)
    assert (shown["model"], shown["path"], shown["template"]) == ("Start", str(start), "{% t %}")
    assert shown["metadata"] == {"general.architecture": "llama"}
    with pytest.raises(ModelNotFound):
        await files.delete("Start")
    assert start.exists()
    assert files.file("nope") is None
