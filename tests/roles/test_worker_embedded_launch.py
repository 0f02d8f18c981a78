"""How the embedded backend names its model and starts llama.cpp: pure functions and the
settings handed to xllamacpp, checked without loading a model (so they run everywhere)."""

from __future__ import annotations

import struct
import sys
from types import SimpleNamespace as NS

import pytest

from eldric import gguf
from eldric.modelops.models_dir import model_id
from eldric.roles.worker import embedded
from eldric.roles.worker.embedded import Launch, pooling_for


@pytest.mark.parametrize("file,want", [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),  # the default (README)
    ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "Qwen2.5-0.5B-Instruct"),
    ("qwen2.5-0.5b-instruct-q4_k_m.gguf", "qwen2.5-0.5b-instruct"),
    ("Qwen2.5-Coder-7B-Instruct-Q5_K_S.gguf", "Qwen2.5-Coder-7B-Instruct"),
    ("Llama-3.2-3B-Instruct-Q4_K_M.gguf", "Llama-3.2-3B-Instruct"),
    ("Llama-3.2-1B-Instruct-f16.gguf", "Llama-3.2-1B-Instruct"),
    ("Meta-Llama-3.1-8B-Instruct.Q8_0.gguf", "Meta-Llama-3.1-8B-Instruct"),
    ("Meta-Llama-3.1-8B-Instruct.i1-Q4_K_M.gguf", "Meta-Llama-3.1-8B-Instruct"),
    ("gemma-2-2b-it-IQ4_XS.gguf", "gemma-2-2b-it"),
    ("gemma-2-9b-it-IQ3_XXS.gguf", "gemma-2-9b-it"),
    ("phi-3.5-mini-instruct.f16.gguf", "phi-3.5-mini-instruct"),
    ("Phi-3-mini-4k-instruct-q4.gguf", "Phi-3-mini-4k-instruct"),
    ("Phi-3-mini-4k-instruct-fp16.gguf", "Phi-3-mini-4k-instruct"),
    ("mistral-7b-instruct-v0.3.Q5_K_S.gguf", "mistral-7b-instruct-v0.3"),
    ("Mistral-Nemo-Instruct-2407-BF16.gguf", "Mistral-Nemo-Instruct-2407"),
    ("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "tinyllama-1.1b-chat-v1.0"),
    ("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", "DeepSeek-R1-Distill-Qwen-7B"),
    ("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", "Qwen3-30B-A3B"),
    ("Qwen3-8B-Q4_0_4_8.gguf", "Qwen3-8B"),
    ("Qwen2.5-72B-Instruct-Q4_K_M-00001-of-00002.gguf", "Qwen2.5-72B-Instruct"),
    ("gpt-oss-20b-mxfp4.gguf", "gpt-oss-20b"),
    ("BitNet-b1.58-2B-4T-TQ1_0.gguf", "BitNet-b1.58-2B-4T"),
    ("nomic-embed-text-v1.5.Q8_0.gguf", "nomic-embed-text-v1.5"),
    ("bge-small-en-v1.5-f32.gguf", "bge-small-en-v1.5"),
    ("ggml-model-q4_0.gguf", "ggml-model"),
    ("my_model_Q6_K.gguf", "my_model"),
    ("Model.GGUF", "Model"),
    ("granite-3.1-2b-instruct.gguf", "granite-3.1-2b-instruct"),  # no tag: name as it is
    ("Q4_K_M.gguf", "Q4_K_M"),  # nothing but a tag: never an empty id
])
def test_model_id_from_real_world_file_names(file, want):
    assert model_id(f"/models/{file}") == want


def test_model_ids_keep_versions_apart():
    """The old rule (cut at the first dot) served Llama-3.1 and Llama-3.2 both as Llama-3."""
    assert model_id("Llama-3.1-8B-Instruct-Q4_K_M.gguf") != \
        model_id("Llama-3.2-8B-Instruct-Q4_K_M.gguf")


def _gguf(path, kvs: list[tuple[str, int, bytes]]) -> str:
    """A GGUF v3 header with these key/values and no tensors (gguf.md's layout)."""
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"".join(s(k) + struct.pack("<I", t) + v for k, t, v in kvs)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body)
    return str(path)


def _tokens(*words: str) -> bytes:  # an array (type 9) of strings (type 8)
    return struct.pack("<IQ", 8, len(words)) + b"".join(
        struct.pack("<Q", len(w)) + w.encode() for w in words)


def test_gguf_header_scalars_skip_arrays(tmp_path):
    path = _gguf(tmp_path / "m.gguf", [
        ("general.architecture", 8, struct.pack("<Q", 4) + b"bert"),
        ("tokenizer.ggml.tokens", 9, _tokens("[CLS]", "hello", "world")),
        ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<ff", 0.5, 1.0)),
        ("bert.pooling_type", 4, struct.pack("<I", 2)),
        ("bert.context_length", 10, struct.pack("<Q", 512)),
    ])
    assert gguf.scalars(path) == {"general.architecture": "bert", "bert.pooling_type": 2,
                                  "bert.context_length": 512}


def test_gguf_reader_gives_what_it_could_read(tmp_path):
    (tmp_path / "junk.gguf").write_bytes(b"junk")
    assert gguf.scalars(str(tmp_path / "junk.gguf")) == {}
    assert gguf.scalars(str(tmp_path / "missing.gguf")) == {}
    whole = _gguf(tmp_path / "cut.gguf", [("general.architecture", 8,
                                           struct.pack("<Q", 5) + b"llama"),
                                          ("llama.pooling_type", 4, struct.pack("<I", 1))])
    (tmp_path / "cut.gguf").write_bytes(open(whole, "rb").read()[:-2])  # cut short
    assert gguf.scalars(str(tmp_path / "cut.gguf")) == {"general.architecture": "llama"}


def test_pooling_is_the_models_own_else_mean(tmp_path):
    def declaring(pooling: int) -> str:
        return _gguf(tmp_path / f"p{pooling}.gguf", [
            ("general.architecture", 8, struct.pack("<Q", 4) + b"bert"),
            ("bert.pooling_type", 4, struct.pack("<I", pooling))])

    assert pooling_for(declaring(2), "auto") is None  # CLS, as the model says
    assert pooling_for(declaring(3), "auto") is None  # LAST (Qwen3-Embedding and the like)
    assert pooling_for(declaring(0), "auto") == "mean"  # "none" cannot serve /v1/embeddings
    undeclared = _gguf(tmp_path / "chat.gguf", [("general.architecture", 8,
                                                 struct.pack("<Q", 5) + b"llama")])
    assert pooling_for(undeclared, "auto") == "mean"  # a chat model (SmolLM2 is one)
    assert pooling_for(declaring(2), "last") == "last"  # --pooling wins


def test_default_threads_is_one_on_small_machines(monkeypatch):
    for cores, want in ((1, 1), (2, 1), (4, 2), (16, 8)):
        monkeypatch.setattr(embedded.os, "cpu_count", lambda cores=cores: cores)
        assert embedded.default_threads() == want


@pytest.fixture
def xllamacpp_stand_in(monkeypatch):
    """A recording stand-in for the xllamacpp module: what start_server() sets on CommonParams is
    not readable back from a running server. Defaults and names as in xllamacpp."""
    made: list[NS] = []

    def params() -> NS:
        return NS(model=NS(path=None), cpuparams=NS(n_threads=None),
                  cpuparams_batch=NS(n_threads=None), embedding=False, pooling_type=-1,
                  n_batch=2048, n_ubatch=512, verbosity=3, n_predict=-1)

    pooling = NS(LLAMA_POOLING_TYPE_UNSPECIFIED=-1, LLAMA_POOLING_TYPE_NONE=0,
                 LLAMA_POOLING_TYPE_MEAN=1, LLAMA_POOLING_TYPE_CLS=2,
                 LLAMA_POOLING_TYPE_LAST=3, LLAMA_POOLING_TYPE_RANK=4)
    monkeypatch.setitem(sys.modules, "xllamacpp", NS(
        CommonParams=params, llama_pooling_type=pooling,
        Server=lambda p: made.append(p) or p))
    return made


def test_llama_cpp_gets_the_threads_and_a_roomy_http_pool(xllamacpp_stand_in):
    embedded.start_server(Launch(model="/m/X.gguf", model_id="X", ctx=2048, parallel=2, threads=3))
    (p,) = xllamacpp_stand_in
    assert p.model.path == "/m/X.gguf" and p.model_alias == {"X"}
    assert (p.n_ctx, p.n_parallel) == (2048, 2)
    assert p.cpuparams.n_threads == 3 and p.cpuparams_batch.n_threads == 3
    assert p.n_threads_http >= 16  # idle keep-alive connections must not hold them all
    assert p.hostnames == ["127.0.0.1"] and p.port == 0
    assert p.embedding is False and p.verbosity == 1  # llama.cpp's errors only
    assert p.n_predict == -1  # no cap on a reply's length unless asked


def test_default_max_tokens_is_llama_cpps_n_predict(xllamacpp_stand_in):
    embedded.start_server(Launch(model="/m/X.gguf", model_id="X", ctx=2048, parallel=2,
                                 threads=1, default_max_tokens=200))
    (p,) = xllamacpp_stand_in
    assert p.n_predict == 200


def test_embeddings_set_pooling_and_a_batch_as_long_as_a_slot(xllamacpp_stand_in):
    base = dict(model="/m/X.gguf", model_id="X", ctx=8192, parallel=2, threads=1)
    embedded.start_server(Launch(**base, embeddings=True, pooling="mean", backend_log=True))
    embedded.start_server(Launch(**base, embeddings=True, pooling=None))
    mean, own = xllamacpp_stand_in
    assert mean.embedding is True and mean.pooling_type == 1  # LLAMA_POOLING_TYPE_MEAN
    assert mean.n_ubatch == mean.n_batch == 4096  # a whole slot's input fits one batch
    assert mean.verbosity == 3  # --backend-log: llama.cpp's info lines too
    assert own.embedding is True and own.pooling_type == -1  # the model's own


def test_a_model_file_that_is_not_there_is_refused_at_start(tmp_path):
    from eldric.errors import ConfigError
    from eldric.roles.worker.config import WorkerConfig

    missing = tmp_path / "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
    with pytest.raises(ConfigError, match="--model"):
        embedded.launch_of(WorkerConfig(backend="embedded", model=str(missing)))
