"""A controller serving its model registry, and the calls the registry tests make."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import run_eldric

ADMIN, CLUSTER = "adm-key", "clu-key"
API = "/api/v1/model-registry"


@dataclass
class Served:
    url: str
    dir: Path  # the registry's directory

    def leftovers(self) -> list[str]:
        """Everything on disk besides the committed models' directories."""
        incoming = os.listdir(self.dir / ".incoming")
        return incoming + [n for n in os.listdir(self.dir)
                           if n != ".incoming" and not (self.dir / n / "meta.json").exists()]


@contextlib.asynccontextmanager
async def controller(tmp_path: Path, **flags) -> AsyncIterator[Served]:  # type: ignore[no-untyped-def]
    flags.setdefault("admin_key", ADMIN)
    flags.setdefault("cluster_key", CLUSTER)
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1", **flags) as urls:
        yield Served(urls["controller"], tmp_path / "data" / "registry")


def auth(key: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def upload_raw(session: aiohttp.ClientSession, url: str, data, key: str = ADMIN,  # type: ignore[no-untyped-def]
                     **query) -> tuple[int, dict]:
    async with session.post(f"{url}{API}/upload", params=query, data=data,
                            headers={**auth(key), "Content-Type": "application/octet-stream"}) as r:
        return r.status, await r.json()


async def upload_form(session: aiohttp.ClientSession, url: str, data: bytes,  # type: ignore[no-untyped-def]
                      filename: str | None = "model.gguf", key: str = ADMIN,
                      **fields) -> tuple[int, dict]:
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    async with session.post(f"{url}{API}/upload", data=form, headers=auth(key)) as r:
        return r.status, await r.json()


async def listed(session: aiohttp.ClientSession, url: str, key: str = CLUSTER) -> list[dict]:
    async with session.get(f"{url}{API}", headers=auth(key)) as r:
        assert r.status == 200
        return (await r.json())["models"]
