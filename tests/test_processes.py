"""--processes N: the real `eldric` program with a supervisor and its children on one port.

Every process is started and stopped by its id (the children by the primary, which the
fixture stops; a test that kills one itself waits for it)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from eldric.processes import aggregate, cores
from eldric.serve.splice import parse_proxy_line
from tests.conftest import free_port

CHAT = (b'{"model":"eldric-mock","stream":%s,'
        b'"messages":[{"role":"user","content":"hi"}]}')


def _worker(eldric_proc, tmp_path, *extra: str, processes: str = "2"):
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "mock", "--bind", "127.0.0.1",
                       "--port", str(port), "--data-dir", str(tmp_path / "data"),
                       "--mock-tokens", "5", "--mock-token-delay", "1",
                       "--processes", processes, *extra)
    return proc, port


def _get(port: int, path: str) -> tuple[int, dict | str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        raw = resp.read().decode()
        kind = resp.getheader("Content-Type", "")
        return resp.status, json.loads(raw) if "json" in kind else raw
    finally:
        conn.close()


def _all_up(port: int, n: int, timeout: float = 20) -> list[dict]:
    """/api/v1/health until it lists n healthy processes (the children start after the
    primary listens)."""
    deadline = time.monotonic() + timeout
    body: object = None
    while time.monotonic() < deadline:
        try:
            status, body = _get(port, "/api/v1/health")
        except OSError:
            status = 0
        if status == 200 and isinstance(body, dict) and len(body["processes"]) == n and \
                all(p["status"] == "healthy" and p["pid"] for p in body["processes"]):
            return body["processes"]
        time.sleep(0.1)
    raise AssertionError(f"not {n} healthy processes within {timeout}s: {body}")


def _chat(port: int, stream: bool = False) -> int:
    """One request on a connection of its own (so the kernel picks a process each time)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=CHAT % (b"true" if stream else b"false"),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _series(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^" + re.escape(name) + r"\{(.*)\} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    return total


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # reaped by its parent, or a zombie of ours
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except (FileNotFoundError, IndexError):
            return True
        time.sleep(0.05)
    return False


def test_two_processes_serve_one_port_and_metrics_add_up(eldric_proc, tmp_path):
    proc, port = _worker(eldric_proc, tmp_path)
    procs = _all_up(port, 2)
    assert len({p["pid"] for p in procs}) == 2
    assert procs[0]["pid"] == proc.p.pid  # the primary is the one started
    k = 40
    assert [_chat(port) for _ in range(k)] == [200] * k
    _status, metrics = _get(port, "/metrics")
    assert isinstance(metrics, str)
    # counted by whichever process answered; /metrics (the primary's) adds them up
    assert _series(metrics, "eldric_requests_total", route="/v1/chat/completions",
                   status="200") == k
    assert _series(metrics, "eldric_request_duration_seconds_count",
                   route="/v1/chat/completions") == k
    assert "eldric_processes 2.0" in metrics or "eldric_processes 2" in metrics
    status, body = _get(port, "/health")
    assert status == 200 and isinstance(body, dict) and body["status"] == "healthy"
    assert [p["index"] for p in body["processes"]] == [0, 1]
    # the child answered chat requests itself (it never sees the GETs: those are spliced)
    assert body["processes"][1]["requests"] > 0
    assert [p["active"] for p in body["processes"]] == [0, 0]  # idle: /health not counted


def test_routes_off_the_fast_lane_are_answered_through_a_child(eldric_proc, tmp_path):
    """GETs (not fast-lane routes) are spliced to the primary: all answer, on fresh
    connections (some land on the child) and on one kept alive."""
    _proc, port = _worker(eldric_proc, tmp_path)
    _all_up(port, 2)
    for _ in range(12):
        status, body = _get(port, "/v1/models")
        assert status == 200 and isinstance(body, dict)
        assert [m["id"] for m in body["data"]] == ["eldric-mock"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for path in ("/v1/models", "/api/v1/health", "/v1/models", "/nope"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == (404 if path == "/nope" else 200)
        # a fast-lane route on a spliced keep-alive connection: the primary answers it
        conn.request("POST", "/v1/chat/completions", body=CHAT % b"false",
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_a_killed_child_is_restarted(eldric_proc, tmp_path):
    proc, port = _worker(eldric_proc, tmp_path)
    child = _all_up(port, 2)[1]["pid"]
    os.kill(child, signal.SIGKILL)
    assert _gone(child, 5)
    procs = _all_up(port, 2, timeout=15)
    assert procs[1]["pid"] != child
    assert [_chat(port) for _ in range(10)] == [200] * 10
    assert "process_exited" in proc.output()


def _slow_worker(eldric_proc, tmp_path, tokens: int):
    """Two processes on a mock backend at 100 ms a token, 8 s of grace: (proc, port, pids)."""
    port = free_port()
    proc = eldric_proc("--role", "worker", "--backend", "mock", "--bind", "127.0.0.1",
                       "--port", str(port), "--data-dir", str(tmp_path / "data"),
                       "--mock-tokens", str(tokens), "--mock-token-delay", "100",
                       "--grace-period", "8000", "--processes", "2")
    return proc, port, [p["pid"] for p in _all_up(port, 2)]


def test_sigterm_lets_a_stream_on_a_child_finish_and_every_process_exits(eldric_proc,
                                                                         tmp_path):
    proc, port, pids = _slow_worker(eldric_proc, tmp_path, tokens=20)
    # streams on connections of their own until one is on the child
    streams = []
    on_child = None
    for _ in range(12):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=CHAT % b"true",
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read1(65536).startswith(b"data: ")
        streams.append((conn, resp))
        _status, body = _get(port, "/api/v1/health")
        assert isinstance(body, dict)
        if body["processes"][1]["active"] >= 1:
            on_child = resp
            break
    assert on_child is not None, "no stream landed on the child"
    t0 = time.monotonic()
    proc.p.send_signal(signal.SIGTERM)
    for _conn, resp in streams:
        rest = resp.read()
        assert rest.rstrip().endswith(b"data: [DONE]")
    assert proc.p.wait(10) == 0
    assert all(_gone(pid, 2) for pid in pids)
    assert time.monotonic() - t0 < 8
    for conn, _resp in streams:
        conn.close()


def test_a_router_with_two_processes(eldric_proc, tmp_path):
    _worker_proc, worker_port = _worker(eldric_proc, tmp_path, processes="1")
    port = free_port()
    eldric_proc("--role", "router", "--bind", "127.0.0.1", "--port", str(port),
                "--workers", f"http://127.0.0.1:{worker_port}",
                "--data-dir", str(tmp_path / "router"), "--processes", "2")
    procs = _all_up(port, 2)
    assert len({p["pid"] for p in procs}) == 2
    assert [_chat(port) for _ in range(30)] == [200] * 30
    _status, body = _get(port, "/api/v1/health")
    assert isinstance(body, dict) and body["processes"][1]["requests"] > 0
    status, models = _get(port, "/v1/models")
    assert status == 200 and isinstance(models, dict)


def test_processes_auto_is_one_per_core(eldric_proc, tmp_path):
    _proc, port = _worker(eldric_proc, tmp_path, processes="auto")
    if cores() == 1:
        status, body = _get(port, "/api/v1/health") if _wait(port) else (0, {})
        assert status == 200 and "processes" not in body  # one process: as before
        return
    assert len(_all_up(port, cores())) == cores()


def _wait(port: int) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def test_one_process_has_no_process_list(eldric_proc, tmp_path):
    proc, port = _worker(eldric_proc, tmp_path, processes="1")
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    status, body = _get(port, "/api/v1/health")
    assert status == 200 and isinstance(body, dict) and "processes" not in body
    _status, metrics = _get(port, "/metrics")
    assert "eldric_processes" not in metrics


@pytest.mark.parametrize("args", [
    ("--role", "controller", "--port", "0", "--processes", "2"),
    ("--role", "controller,router", "--processes", "auto"),  # refused before binding
    ("--role", "worker", "--backend", "embedded", "--port", "0", "--processes", "2"),
])
def test_what_cannot_be_shared_is_refused(tmp_path, args):
    """Exit 2 and a message naming the flag, before anything is bound or loaded."""
    if "auto" in args and cores() == 1:
        pytest.skip("auto is one process on one core: nothing to refuse")
    out = subprocess.run([sys.executable, "-m", "eldric", *args, "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert "--processes" in out.stderr and "Traceback" not in out.stderr


def test_proxy_lines():
    assert parse_proxy_line(b"PROXY TCP4 10.0.0.1 10.0.0.2 5555 443") == \
        (("10.0.0.1", 5555), ("10.0.0.2", 443))
    assert parse_proxy_line(b"PROXY TCP6 ::1 ::1 5555 443") == (("::1", 5555), ("::1", 443))
    assert parse_proxy_line(b"PROXY UNKNOWN") is None
    for bad in (b"GET / HTTP/1.1", b"PROXY TCP4 x y 1 2", b"PROXY TCP4 1.2.3.4"):
        with pytest.raises(ValueError):
            parse_proxy_line(bad)


def test_metrics_are_summed_by_labels():
    one = ('# HELP eldric_requests Requests\n# TYPE eldric_requests counter\n'
           'eldric_requests_total{route="/a",status="200"} 3.0\n'
           '# HELP process_start_time_seconds Start\n# TYPE process_start_time_seconds gauge\n'
           'process_start_time_seconds 100.0\n'
           '# HELP d Duration\n# TYPE d histogram\n'
           'd_bucket{le="1.0"} 1.0\nd_bucket{le="+Inf"} 2.0\nd_count 2.0\nd_sum 1.5\n')
    two = ('# HELP eldric_requests Requests\n# TYPE eldric_requests counter\n'
           'eldric_requests_total{route="/a",status="200"} 4.0\n'
           'eldric_requests_total{route="/b",status="500"} 1.0\n'
           '# HELP process_start_time_seconds Start\n# TYPE process_start_time_seconds gauge\n'
           'process_start_time_seconds 200.0\n'
           '# HELP d Duration\n# TYPE d histogram\n'
           'd_bucket{le="1.0"} 0.0\nd_bucket{le="+Inf"} 1.0\nd_count 1.0\nd_sum 2.0\n')
    text = aggregate.merge_metrics([one, two]).decode()
    assert 'eldric_requests_total{route="/a",status="200"} 7.0' in text
    assert 'eldric_requests_total{route="/b",status="500"} 1.0' in text
    assert "process_start_time_seconds 100.0" in text  # the primary's, not a sum
    assert 'd_bucket{le="+Inf"} 3.0' in text and "d_count 3.0" in text and "d_sum 3.5" in text
    up = ('# HELP eldric_upstream_healthy Up\n# TYPE eldric_upstream_healthy gauge\n'
          'eldric_upstream_healthy{role="router",upstream="w"} 1.0\n')
    merged = aggregate.merge_metrics([up, up, up]).decode()  # each process probes it
    assert 'eldric_upstream_healthy{role="router",upstream="w"} 1.0' in merged
    assert aggregate.worst(["healthy", "degraded"]) == "degraded"
    assert aggregate.worst(["healthy", "loading"]) == "unhealthy"


def _post(port: int, path: str, body: bytes, headers: dict[str, str],
          method: str = "POST") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json",
                                                       **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_an_edge_key_made_and_revoked_through_the_admin_api_holds_in_every_process(
        eldric_proc, tmp_path):
    """The admin call is the primary's (spliced); the children re-read the keys after it
    (eldric.processes.refresh): a new key works, a revoked one is refused, whichever
    process the connection lands on."""
    _worker_proc, worker_port = _worker(eldric_proc, tmp_path, processes="1")
    port = free_port()
    eldric_proc("--role", "edge", "--no-tls", "--http-port", str(port), "--bind", "127.0.0.1",
                "--admin-key", "adm-secret", "--routers", f"http://127.0.0.1:{worker_port}",
                "--data-dir", str(tmp_path / "edge"), "--processes", "2",
                # no limits: with them an edge of several processes needs the farm's Redis
                "--global-rpm", "0", "--per-ip-rpm", "0", "--per-key-rpm", "0")
    _all_up(port, 2)
    admin = {"Authorization": "Bearer adm-secret"}
    status, raw = _post(port, "/api/v1/clients/register", b'{"name":"team-a"}', admin)
    assert status == 201, raw
    key = {"Authorization": f"Bearer {json.loads(raw)['api_key']}"}
    # no wait: the children have re-read the keys before the reply came
    chat = CHAT % b"false"
    assert [_post(port, "/v1/chat/completions", chat, key)[0] for _ in range(16)] == [200] * 16
    status, _raw = _post(port, "/api/v1/clients/team-a", b"", admin, method="DELETE")
    assert status in (200, 204)
    assert [_post(port, "/v1/chat/completions", chat, key)[0] for _ in range(16)] == [401] * 16
    _status, body = _get(port, "/api/v1/health")
    assert isinstance(body, dict) and body["processes"][1]["requests"] > 0


def test_a_child_stopped_alone_is_restarted(eldric_proc, tmp_path):
    proc, port = _worker(eldric_proc, tmp_path)
    child = _all_up(port, 2)[1]["pid"]
    os.kill(child, signal.SIGTERM)  # drains that child (nothing in flight: at once)
    assert _gone(child, 5)
    assert _all_up(port, 2, timeout=15)[1]["pid"] != child
    assert proc.p.poll() is None


def test_children_do_not_outlive_a_killed_primary(eldric_proc, tmp_path):
    proc, port = _worker(eldric_proc, tmp_path)
    child = _all_up(port, 2)[1]["pid"]
    with open(f"/proc/{child}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    proc.p.kill()
    proc.p.wait(5)
    assert _gone(child, 5), "the child outlived its primary"
    import shutil  # a SIGKILLed primary leaves its private directory: not the test's litter

    shutil.rmtree(env[b"ELDRIC_PROCESS_DIR"].decode(), ignore_errors=True)


async def test_the_primary_answers_a_spliced_request_as_the_clients(tmp_path):
    """What the primary's private listener gives aiohttp after the PROXY line: the
    client's address as request.remote and, for a role on TLS, https."""
    import asyncio
    import ssl

    from aiohttp import web

    from eldric.serve.aiohttp_glue import protocol_factory
    from eldric.serve.splice import Proxied

    async def who(request: web.Request) -> web.Response:
        return web.json_response({"remote": request.remote, "scheme": request.scheme})

    app = web.Application()
    app.router.add_get("/who", who)
    runner = web.AppRunner(app)
    await runner.setup()
    factory = protocol_factory(runner)
    loop = asyncio.get_running_loop()
    answers = []
    try:
        for tls in (None, ssl.create_default_context()):
            path = str(tmp_path / f"p-{bool(tls)}.sock")
            server = await loop.create_unix_server(lambda t=tls: Proxied(factory, t), path)
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 8443\r\n"
                         b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = await asyncio.wait_for(reader.read(-1), 5)
            writer.close()
            server.close()
            answers.append(json.loads(raw.partition(b"\r\n\r\n")[2]))
    finally:
        await runner.cleanup()
    assert answers == [{"remote": "203.0.113.7", "scheme": "http"},
                       {"remote": "203.0.113.7", "scheme": "https"}]


def test_a_big_chunked_upload_is_spliced_whole(eldric_proc, tmp_path):
    """Transfer-Encoding: chunked is aiohttp's, so a child splices it: 800 KiB in small
    chunks pass through the relay (and its back-pressure) to the primary intact."""
    _proc, port = _worker(eldric_proc, tmp_path)
    _all_up(port, 2)
    content = b"x" * (800 * 1024)  # under the mock backend's own 1 MiB body limit
    body = b'{"model":"eldric-mock","messages":[{"role":"user","content":"' + content + b'"}]}'

    def chunks():
        for i in range(0, len(body), 16 * 1024):
            yield body[i:i + 16 * 1024]

    for _ in range(6):  # connections of their own: some land on the child
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            conn.request("POST", "/v1/chat/completions", body=chunks(), encode_chunked=True,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200 and b"chat.completion" in resp.read()
        finally:
            conn.close()
    _status, metrics = _get(port, "/metrics")
    assert _series(metrics, "eldric_requests_total", route="/v1/chat/completions",
                   status="200") == 6


def test_a_port_another_program_shares_is_not_joined(eldric_proc, tmp_path):
    """The primary's own bind is exclusive: a port held by another program with
    SO_REUSEPORT is refused (exit 2), never silently shared."""
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    try:
        port = other.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "eldric", "--role", "worker", "--backend",
                              "mock", "--bind", "127.0.0.1", "--port", str(port),
                              "--processes", "2", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=30)
    finally:
        other.close()
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr


def _child_sock(pid: int, role: str, index: int) -> str:
    """Child `index`'s private socket (the directory is in its environment, readable by
    the same user)."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    return os.path.join(env[b"ELDRIC_PROCESS_DIR"].decode(), f"{role}-{index}.sock")


def _child_says(pid: int, role: str, index: int, path: str) -> dict:
    """GET `path` from child `index` itself, over its private socket: what that process
    holds."""
    import asyncio

    answer = asyncio.run(aggregate.ask(_child_sock(pid, role, index), path))
    assert answer is not None and answer[0] == 200, answer
    return json.loads(answer[1])


def test_a_router_strategy_set_at_run_time_holds_in_every_process(eldric_proc, tmp_path):
    """POST /api/v1/config changes state kept in memory only: the primary sends the call
    on to its children (eldric.processes.refresh.replay)."""
    _worker_proc, worker_port = _worker(eldric_proc, tmp_path, processes="1")
    port = free_port()
    eldric_proc("--role", "router", "--bind", "127.0.0.1", "--port", str(port),
                "--workers", f"http://127.0.0.1:{worker_port}", "--admin-key", "adm",
                "--data-dir", str(tmp_path / "router"), "--processes", "2")
    child = _all_up(port, 2)[1]["pid"]
    assert _child_says(child, "router", 1, "/api/v1/config")["strategy"] != "round_robin"
    status, raw = _post(port, "/api/v1/config", b'{"strategy":"round_robin"}',
                        {"Authorization": "Bearer adm"})
    assert status == 200, raw
    # at once: the call was replayed on the child before the primary's reply went out
    assert _child_says(child, "router", 1, "/api/v1/config")["strategy"] == "round_robin"


async def test_a_child_failing_at_start_is_retried_with_a_backoff(tmp_path):
    """A child that exits at once is started again after 0.5 s, 1 s, 2 s, …: a few
    starts in 2.5 s, not a tight loop; stopping the supervisor ends the retries."""
    import asyncio

    from eldric.processes import Plan
    from eldric.processes.supervisor import Supervisor

    marks = tmp_path / "starts"
    sup = Supervisor(Plan(n=2, dir=str(tmp_path)), {}, {})
    sup.argv = [sys.executable, "-c",
                f"open({str(marks)!r}, 'a').write('x'); raise SystemExit(3)"]
    sup.start()
    await asyncio.sleep(2.5)
    sup.terminate()
    await sup.wait(2)
    starts = len(marks.read_text())
    assert 2 <= starts <= 4, starts  # t=0, 0.5, 1.5 (then 3.5): the backoff doubles
    assert sup.restarts[1] == starts
    await asyncio.sleep(0.6)
    assert len(marks.read_text()) == starts  # stopped: no more


def test_sigterm_lets_spliced_streams_finish(eldric_proc, tmp_path):
    """Chunked requests are aiohttp's, so a child splices them to the primary: on SIGTERM
    the primary drains them and the child keeps relaying until they end."""
    proc, port, pids = _slow_worker(eldric_proc, tmp_path, tokens=15)
    streams = []
    for _ in range(8):  # connections of their own: with 8, one on the child but 1 in 256
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=iter([CHAT % b"true"]),
                     encode_chunked=True, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read1(65536).startswith(b"data: ")
        streams.append((conn, resp))
    proc.p.send_signal(signal.SIGTERM)
    for conn, resp in streams:
        assert resp.read().rstrip().endswith(b"data: [DONE]")
        conn.close()
    assert proc.p.wait(10) == 0
    assert all(_gone(pid, 2) for pid in pids)


def test_idle_processes_report_one_request_in_flight_the_scrape(eldric_proc, tmp_path):
    """As with one process, /metrics counts itself in flight, not also each child's
    answer to the primary."""
    _proc, port = _worker(eldric_proc, tmp_path, processes="3")
    _all_up(port, 3)
    _status, metrics = _get(port, "/metrics")
    assert isinstance(metrics, str)
    assert _series(metrics, "eldric_active_requests", role="worker") == 1


async def test_a_cloud_worker_with_two_processes(eldric_proc, tmp_path, aiohttp_server):
    """The cloud role on 2 processes: both up, each request reaches the provider once,
    /metrics and /health speak for the two. (Its inference is not on the fast lane, so a
    child splices it to the primary: docs/design-notes.md, "Every core".)"""
    import asyncio

    import aiohttp

    from tests.conftest import url_of
    from tests.fakes import openai_server

    fake = await aiohttp_server(openai_server.make_app())
    fake.app[openai_server.KNOBS].models = ["m"]
    port = free_port()
    proc = eldric_proc("--role", "cloud", "--port", str(port), "--bind", "127.0.0.1",
                       "--data-dir", str(tmp_path / "cloud"), "--processes", "2",
                       "--backends", f"alpha:{url_of(fake)}/v1")
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    async with aiohttp.ClientSession() as s:
        while True:  # async: the fake provider runs in this loop
            assert proc.p.poll() is None, proc.output()
            try:
                async with s.get(base + "/api/v1/health") as r:
                    body = await r.json()
                    up = body.get("processes", [])
                    if len(up) == 2 and all(p["status"] == "healthy" for p in up):
                        break
            except aiohttp.ClientError:
                pass
            assert loop.time() < deadline, "not 2 healthy processes within 30 s"
            await asyncio.sleep(0.1)
        assert len({p["pid"] for p in up}) == 2

        async def one() -> int:
            conn = aiohttp.TCPConnector(force_close=True)  # the kernel spreads connections
            async with aiohttp.ClientSession(connector=conn) as c, c.post(
                    base + "/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as r:
                await r.read()
                return r.status

        assert await asyncio.gather(*(one() for _ in range(16))) == [200] * 16
        async with s.get(base + "/metrics") as r:
            text = await r.text()
    chats = [q for q in fake.app[openai_server.KNOBS].requests
             if q["path"] == "/v1/chat/completions"]
    assert len(chats) == 16  # once each, whichever process took it
    assert _series(text, "eldric_cloud_requests_total", backend="alpha", model="m") == 16
