"""`eldric models`: the cluster's models with their coverage, and the controller's jobs
that move them (pull, distribute), followed with a bar per worker until they end."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
import click

from eldric.client.http import call
from eldric.client.ops import registry
from eldric.client.ops.common import controller as where
from eldric.client.ops.common import (admin, admin_key_option, ago, base, delete_at, emit,
                                      fail, json_option, run, table, url_option)
from eldric.client.ops.jobs import follow, outcome
from eldric.client.ops.progress import Bars, line

controller_option = url_option("controller", "controller_url", "the controller")
SOURCES = ("registry", "worker", "url", "ollama")


@click.group(invoke_without_command=True)
@controller_option
@json_option
@click.pass_context
def models(ctx: click.Context, controller: str | None, as_json: bool) -> None:
    """The models the live workers serve, and on how many of them (or pull, distribute,
    jobs, cancel, registry)."""
    ctx.obj = {"controller": controller}
    if ctx.invoked_subcommand is not None:
        return
    url = f"{base(controller, 'controller_url')}/api/v1/models"
    got = run(lambda s: call(s, "GET", url))
    emit(got, as_json, lambda: table(
        ("MODEL", "COVERAGE", "WORKERS"),
        ([m["id"], f"{m.get('coverage_percent', 0):g}%", m.get("workers", [])]
         for m in got.get("models", [])), "no models on any live worker"))


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _start(ctx: click.Context, controller: str | None, admin_key: str | None, path: str,
           body: dict[str, Any], as_json: bool, detach: bool) -> None:
    """POST the job, then follow it (unless --detach); exit 1 unless it completed."""
    root, key = where(ctx, controller), admin(admin_key)
    started: list[str] = []

    async def work(s: aiohttp.ClientSession) -> dict[str, Any]:
        accepted = await call(s, "POST", root + path, key=key, body=body)
        job = accepted["job"]
        started.append(job["id"])
        if detach:
            return job
        return await follow(s, root, job, None if as_json else Bars())

    def interrupted() -> str:  # Ctrl-C stops the watching, not the job
        if not started:
            return "interrupted"
        return (f"\nstopped following; job {started[0]} goes on at the controller: "
                f"`eldric models jobs {started[0]}`, `eldric models cancel {started[0]}`")
    job = run(work, interrupted)
    if as_json:
        click.echo(json.dumps(job, indent=2))
    elif detach:
        click.echo(f"job {job['id']} {job['state']}: follow it with `eldric models jobs "
                   f"{job['id']}`")
    else:
        click.echo(f"job {job['id']} {job['state']}")
    if not detach and (line := outcome(job)):
        fail(line)


detach_option = click.option("--detach", is_flag=True,
                              help="print the job and return; it goes on at the controller")
workers_option = click.option("--workers", metavar="ID,ID",
                              help="only these workers [default: every one that can]")
types_option = click.option("--backend-types", metavar="TYPE,TYPE",
                            help="only workers with these backends (ollama, llamacpp, …)")


@models.command()
@click.argument("name")
@workers_option
@types_option
@click.option("--url", "file_url", metavar="URL",
              help="pull this GGUF/safetensors file instead, installed as NAME")
@click.option("--sha256", help="the file's expected sha256 (with --url)")
@controller_option
@admin_key_option
@json_option
@detach_option
@click.pass_context
def pull(ctx: click.Context, name: str, workers: str | None, backend_types: str | None,
         file_url: str | None, sha256: str | None, controller: str | None,
         admin_key: str | None, as_json: bool, detach: bool) -> None:
    """Pull NAME onto the workers, with a bar per worker until every one has it (or
    failed). Needs the admin key."""
    body: dict[str, Any] = {"model": name}
    body |= {k: v for k, v in (("workers", _csv(workers)), ("backend_types", _csv(backend_types)),
                               ("url", file_url), ("sha256", sha256)) if v}
    _start(ctx, controller, admin_key, "/api/v1/models/pull", body, as_json, detach)


@models.command()
@click.argument("name")
@click.option("--source", type=click.Choice(SOURCES), required=True,
              help="where the workers get it: the controller's model registry, another "
                   "worker (--from), a URL (--url) or Ollama's library")
@click.option("--from", "from_", metavar="WORKER", help="the worker to copy it from")
@click.option("--url", "file_url", metavar="URL", help="the file's URL (--source url)")
@click.option("--sha256", help="the file's expected sha256")
@click.option("--as", "install_as", metavar="NAME", help="install it under this name")
@workers_option
@types_option
@controller_option
@admin_key_option
@json_option
@detach_option
@click.pass_context
def distribute(ctx: click.Context, name: str, source: str, from_: str | None,
               file_url: str | None, sha256: str | None, install_as: str | None,
               workers: str | None, backend_types: str | None, controller: str | None,
               admin_key: str | None, as_json: bool, detach: bool) -> None:
    """Put NAME on the workers that lack it, from SOURCE. Needs the admin key."""
    body: dict[str, Any] = {"model": name, "source": source}
    body |= {k: v for k, v in (("from", from_), ("url", file_url), ("sha256", sha256),
                               ("name", install_as), ("workers", _csv(workers)),
                               ("backend_types", _csv(backend_types))) if v}
    _start(ctx, controller, admin_key, "/api/v1/models/distribute", body, as_json, detach)


@models.command()
@click.argument("job_id", required=False)
@controller_option
@json_option
@click.pass_context
def jobs(ctx: click.Context, job_id: str | None, controller: str | None,
         as_json: bool) -> None:
    """The controller's jobs, newest first, or one job's targets."""
    root = where(ctx, controller)
    if job_id is None:
        got = run(lambda s: call(s, "GET", f"{root}/api/v1/models/pull-jobs"))
        emit(got, as_json, lambda: table(
            ("JOB", "KIND", "MODEL", "STATE", "TARGETS", "CREATED"),
            ([j["id"], j["kind"], j["model"], j["state"], _counts(j), ago(j["created_at"])]
             for j in got.get("jobs", [])), "no jobs"))
        return
    job = run(lambda s: call(s, "GET", f"{root}/api/v1/models/pull-jobs/{quote(job_id, safe='')}"))

    def text() -> str:
        head = f"job {job['id']}: {job['kind']} {job['model']}, {job['state']}"
        return "\n".join([head, *(line(t) for t in job.get("targets", []))])
    emit(job, as_json, text)


def _counts(job: dict[str, Any]) -> str:
    states: dict[str, int] = {}
    for t in job.get("targets", []):
        states[t["state"]] = states.get(t["state"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "-"


@models.command()
@click.argument("job_id")
@controller_option
@admin_key_option
@json_option
@click.pass_context
def cancel(ctx: click.Context, job_id: str, controller: str | None, admin_key: str | None,
           as_json: bool) -> None:
    """Cancel a running job on every worker still at it. Needs the admin key."""
    delete_at(f"{where(ctx, controller)}/api/v1/models/pull-jobs/{quote(job_id, safe='')}",
              admin(admin_key), as_json, lambda job: f"job {job['id']} {job['state']}")


models.add_command(registry.registry)
