"""The tiny test adapter (tests/backends/tiny.py) made a kind of both roles for a test:
the worker's KINDS and the cloud role's PROVIDER_KINDS and known provider names get an
entry for it, as a native module's ADAPTERS and ROWS would give them; the worker's config
is this test's own (its `backend` Literal is fixed when eldric is imported)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Literal, get_args

import pytest

from eldric.roles import cloud as cloud_role
from eldric.roles import worker as worker_role
from eldric.roles.cloud import kinds as cloud_kinds
from eldric.roles.cloud.providers import KNOWN, Provider
from eldric.roles.worker.backends import KINDS, BackendKind
from eldric.roles.worker.config import BackendType, WorkerConfig
from tests.backends import tiny
from tests.conftest import run_role


class TinyWorkerConfig(WorkerConfig, kw_only=True, forbid_unknown_fields=True):
    backend: Literal[(*get_args(BackendType), "tiny")] = "tiny"  # type: ignore[valid-type]


TINY_WORKER = dataclasses.replace(worker_role.ROLE, config=TinyWorkerConfig)


@pytest.fixture
def tiny_kind(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(KINDS, "tiny", BackendKind("", "", tuple(tiny.TINY.ops),
                                                  adapter=tiny.TINY))
    monkeypatch.setitem(cloud_kinds.PROVIDER_KINDS, "tiny", cloud_kinds._native(tiny.TINY))
    for name in ("tiny", "tiny-a", "tiny-b"):
        monkeypatch.setitem(KNOWN, name, Provider("tiny", "", None))
    return tiny.TINY


@contextlib.asynccontextmanager
async def tiny_worker(tmp_path, url: str, **settings) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    settings.setdefault("backend_api_key", tiny.KEY)
    async with run_role(TINY_WORKER, tmp_path, backend="tiny", backend_url=url,
                        **settings) as u:
        yield u


@contextlib.asynccontextmanager
async def tiny_cloud(tmp_path, *urls: str, **options) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A cloud worker with backends tiny-a (url 0), tiny-b (url 1) …, in that priority."""
    names = ("tiny-a", "tiny-b")
    backends = [{"name": names[i], "url": u, "api_key": tiny.KEY, "priority": 10 * (i + 1),
                 "options": options} for i, u in enumerate(urls)]
    async with run_role(cloud_role.ROLE, tmp_path, backends=backends) as u:
        yield u
