"""A real edge, router and worker (the mock backend, or a fake) for the usage tests; the
edge's in-process usage state (its recorder) found for assertions."""

from __future__ import annotations

import contextlib
import re
import weakref

import aiohttp

from eldric.roles.edge.state import EdgeState
from tests.conftest import run_eldric, until

# Every EdgeState made in this process, oldest first (weakly: a stopped edge's may go).
# Not found by scanning gc.get_objects(): that needs serve()'s gc.freeze undone, and
# the scan and the full collection of the whole heap at the next start cost a late
# test in the suite (a large heap by then) about 2 s for each edge.
_EDGES: list[weakref.ref[EdgeState]] = []
_made = EdgeState.__init__


def _kept(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _made(self, *args, **kwargs)
    _EDGES.append(weakref.ref(self))


EdgeState.__init__ = _kept  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def cluster(tmp_path, *, worker_flags=None, **edge_flags):
    """worker (mock backend) <- router <- edge: the edge's URL, and the worker's."""
    wf = dict(port=0, bind="127.0.0.1", backend="mock")
    wf.update(worker_flags or {})
    async with run_eldric("worker", tmp_path / "w", **wf) as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000) as r:
        # listening is not routing: wait until the router has seen the worker's models
        # (a busy machine let the first request find "no healthy worker serves it")
        await until(lambda: _routes(r["router"]), timeout=15)
        flags = dict(no_tls=True, http_port=0, bind="127.0.0.1", routers=r["router"],
                     health_interval=1000, require_api_key=False, global_rpm=0,
                     per_ip_rpm=0, per_key_rpm=0)
        flags.update(edge_flags)
        async with run_eldric("edge", tmp_path / "e", **flags) as e:
            watch(e["edge"])
            yield e["edge"], w["worker"]


async def _routes(router: str) -> bool:
    async with aiohttp.ClientSession() as s, s.get(router + "/v1/models") as r:
        return r.status == 200 and bool((await r.json()).get("data"))


def edge_state(url: str):
    """The running edge of `url` (in this process, as run_eldric runs it)."""
    _EDGES[:] = [ref for ref in _EDGES if ref() is not None]
    states = [s for s in (ref() for ref in _EDGES) if s is not None]
    port = url.rsplit(":", 1)[-1].rstrip("/")
    mine = [s for s in states if s.plugins.edge_url.rsplit(":", 1)[-1] == port]
    assert mine, "no edge of that URL runs in this process"
    return mine[-1]


def watch(url: str) -> None:
    """Keep every Record the edge's recorder is handed, for records() (the Recorder
    itself keeps only the sums per bucket)."""
    recorder = edge_state(url).recorder
    if recorder is None:  # --usage off
        return
    seen: list = []
    add = recorder.add

    def watched(record, *bodies):  # type: ignore[no-untyped-def]
        seen.append(record)
        add(record, *bodies)

    recorder.add = watched  # type: ignore[method-assign]
    recorder.seen = seen  # type: ignore[attr-defined]


def records(url: str) -> list:
    """The Records the edge's recorder was handed since watch(url) (cluster() watches
    its edge from the start)."""
    recorder = edge_state(url).recorder
    return [] if recorder is None else list(recorder.seen)  # None: --usage off


async def metrics(url: str) -> dict[tuple[str, ...], float]:
    """eldric_edge_tokens_total and eldric_edge_cost_total: {(name, labels…): value}."""
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    out: dict[tuple[str, ...], float] = {}
    for m in re.finditer(r'^(eldric_edge_(?:tokens|cost)_total)\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = (m.group(1), labels["client"], labels["model"], labels.get("kind", ""))
        out[key] = float(m.group(3))
    return out
