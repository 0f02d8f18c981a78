"""The access log holds the clients' requests: eldric's own polling (health checks,
controller syncs, heartbeats, model-list probes) and health/metrics scrapes are at debug."""

from __future__ import annotations

import json
import time
import urllib.request

from tests.conftest import free_port

FAST = 100  # ms: every loop of the cluster polls ten times a second


def _cluster(eldric_proc, tmp_path, level: str):  # type: ignore[no-untyped-def]
    """controller, worker (mock), router and edge in one process, polling fast."""
    ports = {r: free_port() for r in ("controller", "worker", "router", "edge")}
    url = {r: f"http://127.0.0.1:{p}" for r, p in ports.items()}
    local = {"bind_address": "127.0.0.1"}
    config = {
        "log_level": level, "log_format": "json",
        "controller": {**local, "port": ports["controller"], "flush_interval_ms": FAST},
        "worker": {**local, "port": ports["worker"], "backend": "mock",
                   "controller_url": url["controller"], "heartbeat_interval_ms": FAST,
                   "health_check_interval_ms": FAST},
        "router": {**local, "port": ports["router"], "workers": [{"url": url["worker"]}],
                   "controller_url": url["controller"], "sync_interval_ms": FAST,
                   "health_check_interval_ms": FAST},
        "edge": {**local, "no_tls": True, "http_port": ports["edge"],
                 "router_urls": [url["router"]], "health_check_interval_ms": FAST,
                 "auth": {"require_api_key": False}},
    }
    path = tmp_path / f"cluster-{level}.json"
    path.write_text(json.dumps(config))
    proc = eldric_proc("--role", "controller,worker,router,edge", "--config", str(path),
                       "--data-dir", str(tmp_path / level))
    proc.wait_http(url["edge"] + "/health")
    return proc, url


def _client_requests(url: dict[str, str]) -> set[str]:
    """A client's requests through the edge, each with its own request id; and a
    Prometheus-style scrape of every role's /health, /api/v1/health and /metrics."""
    ids = set()
    for i in range(3):
        rid = f"client-{i}"
        body = json.dumps({"model": "eldric-mock", "max_tokens": 2,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        req = urllib.request.Request(url["edge"] + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json",
                                              "X-Request-ID": rid})
        deadline = time.monotonic() + 10
        while True:  # the router may not have checked the worker yet
            try:
                urllib.request.urlopen(req, timeout=5).read()
                break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, "the cluster never answered"
                time.sleep(0.1)
        ids.add(rid)
    # A client calling itself eldric is still a client: its relayed requests stay at info
    # (a /v1/* path the fast lane does not take, so the aiohttp lane decides).
    req = urllib.request.Request(url["edge"] + "/v1/score", data=json.dumps(
        {"model": "eldric-mock", "text_1": "q", "text_2": "d"}).encode(), headers={
        "Content-Type": "application/json", "X-Request-ID": "client-ua",
        "User-Agent": "eldric/0.1.0"})
    try:
        urllib.request.urlopen(req, timeout=5).read()
    except urllib.error.HTTPError:
        pass  # the mock serves no score: the router's 404, logged like any other reply
    ids.add("client-ua")
    for base in url.values():
        for path in ("/health", "/api/v1/health", "/metrics"):
            try:
                urllib.request.urlopen(base + path, timeout=5).read()
            except urllib.error.HTTPError:
                pass  # a 503 /health is still a scrape
    return ids


def _access_lines(out: str) -> list[dict]:
    lines = []
    for raw in out.splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "request":
            lines.append(event)
    return lines


def test_info_log_has_only_the_clients_requests(eldric_proc, tmp_path):
    proc, url = _cluster(eldric_proc, tmp_path, "info")
    ids = _client_requests(url)
    time.sleep(1.5)  # fifteen rounds of every poll
    lines = _access_lines(proc.stop())
    others = [(e["role"], e["method"], e["path"]) for e in lines if e["request_id"] not in ids]
    assert not others, f"{len(others)} access lines that no client asked for: {others[:10]}"
    # Each chat crossed three hops, each hop logged it once, at info.
    chats = [e for e in lines if e["path"] == "/v1/chat/completions" and e["status"] == 200]
    assert sorted(e["role"] for e in chats) == sorted(["edge", "router", "worker"] * 3)
    assert {e["role"] for e in lines if e["request_id"] == "client-ua"} == {"edge", "router"}
    assert {e["level"] for e in lines} == {"info"}


def test_debug_log_shows_the_polling_at_debug(eldric_proc, tmp_path):
    proc, url = _cluster(eldric_proc, tmp_path, "debug")
    ids = _client_requests(url)
    time.sleep(1.5)
    lines = _access_lines(proc.stop())
    by_level: dict[str, set[tuple[str, str]]] = {"info": set(), "debug": set()}
    for e in lines:
        by_level[e["level"]].add((e["role"], e["path"]))
        if e["request_id"] in ids:
            assert e["level"] == "info", e
    assert {e["request_id"] for e in lines if e["level"] == "info"} == ids
    polled = by_level["debug"]
    # The edge checks the router, the router checks the worker and syncs from the
    # controller, the worker heartbeats: all there, all at debug.
    assert ("router", "/health") in polled and ("worker", "/health") in polled
    assert ("worker", "/v1/models") in polled  # the router's model-list probe
    assert ("controller", "/api/v1/workers") in polled
    assert any(role == "controller" and path.endswith("/heartbeat") for role, path in polled)
    assert ("edge", "/metrics") in polled  # a scrape by the test, at debug too
