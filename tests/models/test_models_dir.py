"""eldric.modelops.models_dir: what a models directory holds, by the names clients use."""

from __future__ import annotations

import datetime
import os

from eldric.modelops.models_dir import installed, resolve


def _file(path, size: int = 10):  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"G" * size)
    return path


def test_gguf_files_and_safetensors_directories_are_models(tmp_path):
    _file(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf", 100)
    _file(tmp_path / "qwen" / "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", 50)  # one level down
    _file(tmp_path / "Llama-3.2-1B" / "model-00001-of-00002.safetensors", 7)
    _file(tmp_path / "Llama-3.2-1B" / "model-00002-of-00002.safetensors", 8)
    _file(tmp_path / "Llama-3.2-1B" / "config.json", 1)
    _file(tmp_path / "Big-Q8_0.gguf.part")  # a download in progress
    _file(tmp_path / "mmproj-SmolVLM-f16.gguf")  # a projector, not a model
    _file(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    os.utime(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf", (0, 86400))
    got = {m.name: m for m in installed(tmp_path)}
    assert list(got) == ["Llama-3.2-1B", "Qwen2.5-0.5B-Instruct", "SmolLM2-135M-Instruct"]
    smol = got["SmolLM2-135M-Instruct"]
    assert (smol.size, smol.format, smol.modified_at) == (100, "gguf", "1970-01-02T00:00:00Z")
    assert smol.path == str(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")
    llama = got["Llama-3.2-1B"]
    assert (llama.format, llama.size, llama.path) == ("safetensors", 16,
                                                      str(tmp_path / "Llama-3.2-1B"))
    assert datetime.datetime.fromisoformat(llama.modified_at.replace("Z", "+00:00"))


def test_a_split_gguf_is_one_model_once_every_part_is_there(tmp_path):
    _file(tmp_path / "Big-Q4_K_M-00001-of-00002.gguf", 5)
    assert installed(tmp_path) == []  # part two still on its way
    _file(tmp_path / "Big-Q4_K_M-00002-of-00002.gguf", 6)
    (m,) = installed(tmp_path)
    assert (m.name, m.size) == ("Big", 11)
    assert m.path == str(tmp_path / "Big-Q4_K_M-00001-of-00002.gguf")


def test_symlinks_are_followed_and_dangling_ones_skipped(tmp_path):
    real = _file(tmp_path / "shared" / "Phi-3-mini-4k-instruct-q4.gguf", 30)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / real.name).symlink_to(real)
    (tmp_path / "models" / "Gone-Q4_0.gguf").symlink_to(tmp_path / "nowhere.gguf")
    (m,) = installed(tmp_path / "models")
    assert (m.name, m.size) == ("Phi-3-mini-4k-instruct", 30)


def test_clashing_ids_keep_their_quantisation_so_each_can_be_asked_for(tmp_path):
    _file(tmp_path / "Model-Q4_K_M.gguf")
    _file(tmp_path / "Model-Q8_0.gguf")
    _file(tmp_path / "Other.Q4_1.gguf")
    assert [m.name for m in installed(tmp_path)] == ["Model-Q4_K_M", "Model-Q8_0", "Other"]


def test_resolve_by_name_or_by_file_name(tmp_path):
    f = _file(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")
    for name in ("SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1",
                 "SmolLM2-135M-Instruct.Q4_1.gguf"):
        m = resolve(tmp_path, name)
        assert m is not None and m.path == str(f)
    assert resolve(tmp_path, "smollm2-135m-instruct") is None  # ids are exact
    assert resolve(tmp_path / "missing", "SmolLM2-135M-Instruct") is None


def test_a_missing_directory_holds_nothing(tmp_path):
    assert installed(tmp_path / "not-made-yet") == []
    _file(tmp_path / "file-not-dir")
    assert installed(tmp_path / "file-not-dir") == []

