"""`eldric models registry`: the controller's model registry (list, upload FILE with a
progress bar, delete)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import click

from eldric.client.http import ApiError, call, error_of, headers
from eldric.client.ops.common import (admin, admin_key_option, ago, delete_at, emit, json_option,
                                      run)
from eldric.client.ops.common import controller as where
from eldric.client.ops.common import size, table, url_option

controller_option = url_option("controller", "controller_url", "the controller")
API = "/api/v1/model-registry"
CHUNK = 1 << 20


@click.group(invoke_without_command=True)
@controller_option
@admin_key_option
@json_option
@click.pass_context
def registry(ctx: click.Context, controller: str | None, admin_key: str | None,
             as_json: bool) -> None:
    """The model files the controller keeps for the fleet (or upload, delete). Listing
    takes the admin or the cluster key when the controller has them."""
    if controller:
        ctx.obj = {"controller": controller}
    if ctx.invoked_subcommand is not None:
        return
    url, key = f"{where(ctx, None)}{API}", admin(admin_key)
    got = run(lambda s: call(s, "GET", url, key=key))
    emit(got, as_json, lambda: table(
        ("ID", "NAME", "FORMAT", "SIZE", "QUANT", "PARAMS", "ADDED"),
        ([m.get("id"), m.get("name"), m.get("format"), size(m.get("size")),
          m.get("quantization"), m.get("parameter_count"), ago(m.get("created_at"))]
         for m in got.get("models", [])), "the registry is empty"))


@registry.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="its name in the registry [default: the file's, without "
                             "its extension]")
@click.option("--format", "fmt", type=click.Choice(("gguf", "safetensors")))
@click.option("--description", default=None)
@click.option("--sha256", help="refused unless the file hashes to this")
@controller_option
@admin_key_option
@json_option
@click.pass_context
def upload(ctx: click.Context, file: Path, name: str | None, fmt: str | None,
           description: str | None, sha256: str | None, controller: str | None,
           admin_key: str | None, as_json: bool) -> None:
    """Upload FILE (streamed, with a progress bar). Needs the admin key."""
    url, key = f"{where(ctx, controller)}{API}/upload", admin(admin_key)
    # The registry wants a name for a raw body; the file's, as a form upload would.
    query = {k: v for k, v in (("name", name or file.stem), ("format", fmt),
                               ("description", description), ("sha256", sha256)) if v}
    total = os.path.getsize(file)
    if not sys.stderr.isatty():  # a bar in a log is noise: the result line says it all
        got = run(lambda s: _send(s, url, key, query, file, total, lambda n: None))
    else:
        with click.progressbar(length=total, label=file.name, file=sys.stderr, show_pos=False,
                               show_percent=True) as bar:
            got = run(lambda s: _send(s, url, key, query, file, total, bar.update))
    emit(got, as_json, lambda: f"uploaded {got.get('name')} ({got.get('id')}, "
                               f"{size(got.get('size'))}, sha256 {got.get('sha256')})")


async def _send(s: aiohttp.ClientSession, url: str, key: str | None, query: dict[str, str],
                file: Path, total: int, step: Callable[[int], object]) -> Any:
    """The raw file as the body, read a MiB at a time as the connection takes it; no
    overall deadline (an upload takes as long as it takes), only the registry's own
    idle timeout at the other end."""
    async def chunks() -> AsyncIterator[bytes]:
        with open(file, "rb") as f:
            while block := f.read(CHUNK):
                yield block
                step(len(block))
    hdrs = {**headers(key), "Content-Type": "application/octet-stream",
            "Content-Length": str(total)}
    try:
        async with s.post(url, params=query, data=chunks(), headers=hdrs,
                          timeout=aiohttp.ClientTimeout(total=None, sock_connect=10,
                                                        sock_read=300)) as resp:
            if resp.status >= 400:
                raise await error_of(resp)
            return await resp.json()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ApiError(0, "unreachable", str(exc) or type(exc).__name__, url) from None


@registry.command()
@click.argument("model_id")
@controller_option
@admin_key_option
@json_option
@click.pass_context
def delete(ctx: click.Context, model_id: str, controller: str | None, admin_key: str | None,
           as_json: bool) -> None:
    """Delete a model file from the registry (by id or name). Needs the admin key."""
    delete_at(f"{where(ctx, controller)}{API}/{quote(model_id, safe='')}", admin(admin_key),
              as_json, lambda got: f"deleted {got.get('name')} ({got.get('deleted')})")
