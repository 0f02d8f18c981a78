"""The one table of backend kinds: README shows it as it is, its rows are sane, and the
worker's --backend choices and the cloud role's provider names are derived from it."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from eldric.backends import readme
from eldric.backends.table import CHAT, EMBEDDINGS, RERANK, Auth, rows

ROOT = Path(__file__).resolve().parents[2]


def test_readme_holds_the_table_as_generated():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.replaced(text) == text, (
        "README's backend table is not the table's: run python -m eldric.backends.readme")
    # one line per kind, each naming it
    block = text[text.index(readme.BEGIN):text.index(readme.END)]
    assert [ln.split("|")[1].strip() for ln in block.splitlines()[3:]] == \
        [f"`{n}`" for n in rows()]


def test_readme_without_markers_is_refused():
    with pytest.raises(ValueError, match="backends:begin"):
        readme.replaced("# no table here\n")


@pytest.mark.parametrize("name", list(rows()))
def test_every_row_is_sane(name):
    row = rows()[name]
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,63}", name)  # a --backends name too
    assert row.label and row.where in ("local", "cloud")
    assert row.auth in typing.get_args(Auth)
    assert row.docs.startswith("https://"), "every row cites where its API is documented"
    if not row.available:
        assert row.url is None and "template" in row.note
        return
    assert row.tested, "an available kind says how the tests reach it"
    tested = re.search(r"tests/\S+\.py", row.tested)
    assert tested and (ROOT / tested.group()).is_file(), row.tested
    if row.url is None:
        assert "url required" in row.note, "a kind without a default URL says so"
    else:
        u = urlsplit(row.url)
        if row.where == "local":
            assert u.scheme == "http" and u.hostname == "127.0.0.1" and u.port, row.url
        else:
            assert u.scheme == "https" and u.port is None, row.url
        assert not row.url.endswith("/")
    if row.key_env is not None:
        assert re.fullmatch(r"[A-Z0-9_]+_API_KEY", row.key_env)
    assert row.models is None or row.models.startswith("/")
    if row.paths is not None:
        assert row.paths and all(p.startswith("/v1/") or p == "/api" for p in row.paths)
        if row.api == "openai":  # what it can do agrees with what it serves
            assert CHAT in row.paths
            assert (EMBEDDINGS in row.paths) == row.embeddings, row.paths
            assert (RERANK in row.paths) == row.rerank, row.paths


def test_the_worker_and_the_cloud_are_derived_from_the_table():
    from eldric.roles.cloud.providers import KNOWN
    from eldric.roles.worker.backends import KINDS
    from eldric.roles.worker.config import BackendType

    local = {n for n, r in rows().items() if r.available and r.api == "openai"
             and r.where == "local"}
    native = {n for n, r in rows().items() if r.available and r.api != "openai"}
    assert set(KINDS) == local | native | {"openai", "embedded", "mock"}
    assert all(KINDS[n].adapter is not None for n in native)
    for name in local:
        row, kind = rows()[name], KINDS[name]
        assert kind.default_url + "/v1" == row.url or name == "ollama"
        assert kind.paths == row.paths
    assert KINDS["kserve-hf"].default_url == "http://127.0.0.1:8080/openai"  # + /v1/…
    assert KINDS["ollama"].models_path == "/api/tags" and KINDS["ollama"].native_tags
    assert KINDS["vllm"].tokenizes_chats
    # a kind with no server API parses (then the worker refuses it with a pointer)
    assert {"lcm", "vl-jepa"} <= set(typing.get_args(BackendType))
    for name, row in rows().items():
        if name == "ollama":  # its own kind: the root URL, its /api/tags
            continue
        if row.available:
            assert name in KNOWN and KNOWN[name].url == (row.url or "")
            assert KNOWN[name].env == row.key_env
            if row.api == "openai":
                assert KNOWN[name].type == "openai_compatible"
        else:
            assert name not in KNOWN
    assert KNOWN["ollama"].type == "ollama" and KNOWN["anthropic"].type == "anthropic"


def test_a_provider_without_a_default_url_is_not_offered_by_its_key_alone():
    from eldric.roles.cloud.providers import providers_with_keys

    got = providers_with_keys({"ANYSCALE_API_KEY": "k", "GROQ_API_KEY": "g"})
    assert got == ["groq"]


def test_eldric_backends_prints_every_kind_with_its_defaults():
    from click.testing import CliRunner

    from eldric.client.ops.backends import backends

    ran = CliRunner().invoke(backends, [])
    assert ran.exit_code == 0, ran.output
    lines = ran.output.splitlines()
    assert lines[0].split()[:4] == ["KIND", "WHAT", "DEFAULT", "URL"]
    first = {ln.split()[0]: ln for ln in lines[1:len(rows()) + 1]}
    assert list(first) == list(rows())
    assert "http://127.0.0.1:8000/v1" in first["nim"] and "bearer" in first["groq"]
    assert "not available" in first["lcm"]
    # then each role's view, as before
    assert any(ln.split()[:3] == ["worker", "nim", "http://127.0.0.1:8000"] for ln in lines)
