"""The primary answers /metrics and /health for all its processes (children splice those
requests to it): each child is asked over its private socket, where it answers for
itself alone."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

import msgspec
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

ASK_TIMEOUT = 2.0  # a child that does not answer in this long counts as down
# Series that are not amounts: the primary's value, not a sum (every process probes its
# upstreams, so a healthy one is 1 in each: summed it read N).
_NOT_SUMMED = frozenset(("process_start_time_seconds", "process_max_fds",
                         "eldric_upstream_healthy"))
_WORST = {"healthy": 0, "degraded": 1}  # any other status ranks with unhealthy


async def ask(path: str, target: str, method: str = "GET", headers: dict[str, str] | None = None,
              body: bytes = b"", timeout: float = ASK_TIMEOUT) -> tuple[int, bytes] | None:
    """`method target` over the unix socket at `path`: (status, body), None if no answer."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                writer.write(f"{method} {target} HTTP/1.1\r\nHost: eldric\r\n{extra}"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                             .encode("latin-1") + body)
                raw = await reader.read(-1)
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    head, sep, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
    return (status, body) if sep else None


async def ask_children(paths: Iterable[str], target: str, method: str = "GET",
                       headers: dict[str, str] | None = None,
                       body: bytes = b"",
                       timeout: float = ASK_TIMEOUT) -> list[tuple[int, bytes] | None]:
    return list(await asyncio.gather(*(ask(p, target, method, headers, body, timeout)
                                       for p in paths)))


def worst(statuses: Iterable[str]) -> str:
    rank = max((_WORST.get(s, 2) for s in statuses), default=0)
    return ("healthy", "degraded", "unhealthy")[rank]


def merge_metrics(texts: list[str], adjust: dict[tuple, float] | None = None) -> bytes:
    """Prometheus text of several processes as one: samples with the same name and labels
    added (counters, histogram buckets/sums/counts, gauges), the first text's order.
    `adjust`: (sample name, sorted label pairs) -> what to add to that sum."""
    families: dict[str, tuple[str, str, dict[tuple, float]]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            _, _, samples = families.setdefault(fam.name, (fam.type, fam.documentation, {}))
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if s.name in _NOT_SUMMED:
                    samples.setdefault(key, s.value)  # the primary's (the first text)
                else:
                    samples[key] = samples.get(key, 0.0) + s.value
    for _kind, _doc, samples in families.values():
        for key, delta in (adjust or {}).items():
            if key in samples:
                samples[key] += delta
    out = []
    for name, (kind, doc, samples) in families.items():
        doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        for (sample, labels), value in samples.items():
            if labels:
                pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                out.append(f"{sample}{{{pairs}}} {floatToGoString(value)}\n")
            else:
                out.append(f"{sample} {floatToGoString(value)}\n")
    return "".join(out).encode()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def process_entry(index: int, answer: tuple[int, bytes] | None) -> dict:
    """One process of the /health list, from its own /health answer (None: no answer)."""
    if answer is None:
        # Down (being restarted): the port still serves, through the other processes, so
        # the whole is degraded, not unhealthy (a balancer would take the host out).
        return {"index": index, "pid": None, "status": "degraded", "error": "not answering"}
    try:
        body = msgspec.json.decode(answer[1])
        own = body.get("process") or {}
        return {"index": index, "pid": own.get("pid"), "status": body.get("status", "unhealthy"),
                "requests": own.get("requests", 0), "active": own.get("active", 0)}
    except (msgspec.DecodeError, AttributeError):
        return {"index": index, "pid": None, "status": "unhealthy", "error": "bad answer"}


def own_entry(index: int, status: str, requests: int, active: int) -> dict:
    return {"index": index, "pid": os.getpid(), "status": status, "requests": requests,
            "active": active}
