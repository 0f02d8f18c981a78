"""Processes for the hop benchmark: start, wait for, pin, measure and stop them.

Every process runs in its own session (= its own process group), on 127.0.0.1, and is
stopped by its own process-group id. Used by bench/run.py; see bench/README.md.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------- processes


class Proc:
    """A process we started, in its own session (= its own process group)."""

    def __init__(self, name: str, argv: list[str], stderr_path: Path | None,
                 env: dict[str, str] | None = None):
        """`env`: variables set for this process on top of ours."""
        self.name = name
        self.argv = argv
        self.stderr_path = stderr_path
        err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        try:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err,
                                          start_new_session=True,
                                          env={**os.environ, **env} if env else None)
        finally:
            if stderr_path:
                err.close()  # type: ignore[union-attr]
        self.pid = self.popen.pid
        self.ps = psutil.Process(self.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """user+system CPU of the process and its live children (nginx's worker)."""
        total = 0.0
        try:
            procs = [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the process and its live children (nginx's worker, eldric's
        --processes children), summed."""
        try:
            procs = [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def signal_group(self, sig: int) -> None:
        """Send `sig` to our own process group (SIGSTOP/SIGCONT pause and resume the
        process with its children); a process already gone is not an error."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stderr_tail(self, n: int = 5) -> str:
        if not self.stderr_path or not self.stderr_path.exists():
            return ""
        lines = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        """SIGTERM to our own process group, then SIGKILL if it lingers."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)  # the group id is our child's pid
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop on SIGTERM; SIGKILL")
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=5)


def ssl_context(cafile: Path | None) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=str(cafile)) if cafile else None


def http_get(url: str, timeout: float = 1.0, cafile: Path | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ssl_context(cafile)) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_processes(url: str, n: int, limit_s: float = 30, cafile: Path | None = None) -> None:
    """Until all n processes of an eldric role (--processes) answer healthy in its
    /api/v1/health: a connection made before a child listens goes to the primary, and
    keep-alive keeps it there for the whole run."""
    deadline = time.monotonic() + limit_s
    while n > 1:
        try:
            status, raw = http_get(url + "/api/v1/health", timeout=2, cafile=cafile)
            procs = json.loads(raw).get("processes", []) if status == 200 else []
            if len(procs) == n and all(p["status"] == "healthy" for p in procs):
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {n} healthy processes within {limit_s:g} s")
        time.sleep(0.1)


def set_affinity(proc: Proc, cpus: set[int]) -> None:
    """Pin every thread of the process and of its children (nginx's worker) to `cpus`."""
    try:
        procs = [proc.ps, *proc.ps.children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        try:
            for t in p.threads():
                try:
                    os.sched_setaffinity(t.id, cpus)
                except OSError:
                    pass
        except psutil.Error:
            pass


def _poll_until_200(proc: Proc, what: str, attempt, limit_s: float) -> None:  # type: ignore[no-untyped-def]
    """Call attempt() -> (status, body) every 0.1 s until it gives 200; bounded in count and
    time; fail at once if the process died."""
    deadline = time.monotonic() + limit_s
    last = "no answer"
    for _ in range(int(limit_s / 0.1) + 1):
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with code {proc.popen.returncode}:\n"
                               f"{proc.stderr_tail(8)}")
        try:
            status, reply = attempt()
            if status == 200:
                return
            last = f"HTTP {status}" + (f": {reply[:200].decode(errors='replace')}" if reply else "")
        except OSError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {what} not 200 within {limit_s:g}s ({last})")


def wait_healthy(proc: Proc, url: str, limit_s: float = 15.0,
                 cafile: Path | None = None) -> None:
    _poll_until_200(proc, f"GET {url}",
                    lambda: (http_get(url, timeout=0.5, cafile=cafile)[0], b""), limit_s)


def nginx_conf(tmp: Path, port: int, mock_port: int) -> Path:
    conf = f"""
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;
    # nginx closes a client keep-alive connection after 1000 requests by default; eldric
    # (aiohttp) does not, so lift the cap on both sides for a like-for-like comparison.
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    upstream mock {{
        server 127.0.0.1:{mock_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""
    path = tmp / "nginx.conf"
    path.write_text(conf)
    return path



def http_post_json(url: str, body: dict, timeout: float = 5.0,
                   headers: dict[str, str] | None = None,
                   cafile: Path | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ssl_context(cafile)) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_serving(proc: Proc, url: str, body: dict, limit_s: float = 15.0,
                 headers: dict[str, str] | None = None, cafile: Path | None = None,
                 request_timeout: float = 2.0) -> None:
    """POST `body` to `url` until it answers 200 (a router may be healthy before it has a
    healthy worker to send the request to). `request_timeout` per attempt: raise it when the
    backend answers slowly (bench/streams.py's slow mock takes ~4 s per reply)."""
    _poll_until_200(proc, f"POST {url}",
                    lambda: http_post_json(url, body, timeout=request_timeout,
                                           headers=headers, cafile=cafile), limit_s)


def eldric_exe() -> str:
    return shutil.which("eldric") or "eldric"


def start_mock(tmp: Path, port: int, tokens: int, token_delay_ms: float,
               procs: list[Proc]) -> Proc:
    """eldric's own mock backend: `tokens` tokens a reply, `token_delay_ms` between them."""
    mock = Proc("mock", [sys.executable, "-m", "eldric.mock", "--port", str(port),
                         "--tokens", str(tokens), "--token-delay", str(token_delay_ms)],
                tmp / "mock.log")
    procs.append(mock)
    wait_healthy(mock, f"http://127.0.0.1:{port}/health")
    return mock


def start_worker(tmp: Path, port: int, mock_port: int, log_format: str,
                 procs: list[Proc], notes: list[str]) -> tuple[Proc, str]:
    """The eldric worker in front of the mock; falls back to --log-format console if it
    cannot start with `log_format`. Returns the worker and the log format it runs with."""
    for attempt in dict.fromkeys((log_format, "console")):
        worker = Proc("worker", [
            eldric_exe(), "--role", "worker", "--backend", "vllm",
            "--backend-url", f"http://127.0.0.1:{mock_port}", "--port", str(port),
            "--bind", "127.0.0.1", "--data-dir", str(tmp / f"worker-data-{attempt}"),
            "--log-format", attempt, "--log-level", "info"], tmp / f"worker-{attempt}.log")
        procs.append(worker)
        try:
            wait_healthy(worker, f"http://127.0.0.1:{port}/health")
            return worker, attempt
        except RuntimeError as exc:
            worker.stop()
            if attempt == "console":
                raise
            tail = [ln for ln in worker.stderr_tail(3).splitlines() if ln.strip()]
            notes.append(f"worker failed to start with --log-format {attempt} "
                         f"({tail[-1] if tail else exc}); measured with --log-format "
                         "console instead (logging still at info)")
            log(notes[-1])
    raise AssertionError("unreachable")


def start_router(tmp: Path, port: int, worker_port: int, log_format: str,
                 procs: list[Proc], path: str, body: dict,
                 request_timeout: float = 2.0, extra_args: list[str] | None = None) -> Proc:
    """An eldric router with the worker as its only static worker, round robin. Ready when
    GET /health is 200 and a test request through it is 200. `extra_args`: more flags
    (e.g. --processes N)."""
    router = Proc("router", [
        eldric_exe(), "--role", "router", "--workers", f"http://127.0.0.1:{worker_port}",
        "--port", str(port), "--bind", "127.0.0.1", "--data-dir", str(tmp / "router-data"),
        "--log-format", log_format, "--log-level", "info", "--strategy", "round_robin",
        *(extra_args or [])], tmp / f"router-{log_format}.log")
    procs.append(router)
    wait_healthy(router, f"http://127.0.0.1:{port}/health")
    wait_serving(router, f"http://127.0.0.1:{port}{path}", body,
                 request_timeout=request_timeout)
    return router


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A test CA and a certificate for 127.0.0.1 (trustme). Returns (ca.pem, cert.pem); the
    cert file holds the chain and the private key, so it serves as --cert and --key."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path, cert_path = tmp / "ca.pem", tmp / "cert.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    os.chmod(cert_path, 0o600)
    return ca_path, cert_path


def start_edge(name: str, tmp: Path, port: int, router_port: int, log_format: str,
               procs: list[Proc], path: str, body: dict, api_key: str,
               tls: tuple[Path, Path] | None = None,
               request_timeout: float = 2.0,
               extra_args: list[str] | None = None) -> tuple[Proc, str]:
    """An eldric edge in front of the router, API key required, rate limits on but far
    above anything the benchmark sends. `tls` = (ca.pem, cert.pem): HTTPS on --port, else
    plain HTTP (--no-tls --http-port). Ready when GET /health is 200 and an authorised test
    request through it is 200. Returns the edge and its base URL."""
    argv = [eldric_exe(), "--role", "edge"]
    if tls:
        argv += ["--port", str(port), "--cert", str(tls[1]), "--key", str(tls[1])]
        base = f"https://127.0.0.1:{port}"
    else:
        argv += ["--no-tls", "--http-port", str(port)]
        base = f"http://127.0.0.1:{port}"
    argv += ["--bind", "127.0.0.1", "--routers", f"http://127.0.0.1:{router_port}",
             "--api-key", api_key, "--data-dir", str(tmp / f"{name}-data"),
             "--log-format", log_format, "--log-level", "info",
             "--per-ip-rpm", "100000000", "--per-key-rpm", "100000000",
             "--global-rpm", "100000000", *(extra_args or [])]
    edge = Proc(name, argv, tmp / f"{name}-{log_format}.log")
    procs.append(edge)
    cafile = tls[0] if tls else None
    wait_healthy(edge, f"{base}/health", cafile=cafile)
    wait_serving(edge, f"{base}{path}", body, headers={"Authorization": f"Bearer {api_key}"},
                 cafile=cafile, request_timeout=request_timeout)
    return edge, base


def start_nginx(tmp: Path, port: int, mock_port: int, procs: list[Proc]) -> Proc:
    conf = nginx_conf(tmp, port, mock_port)
    (tmp / "logs").mkdir(exist_ok=True)
    nginx = Proc("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf),
                           "-p", str(tmp), "-e", str(tmp / "nginx-error.log")],
                 tmp / "nginx-stderr.log")
    procs.append(nginx)
    wait_healthy(nginx, f"http://127.0.0.1:{port}/health")
    return nginx


def log_summary(proc: Proc, log_format: str, notes: list[str]) -> dict:
    """An eldric process's own log: how many lines, which levels; warnings/errors go to
    the notes with the last such lines."""
    text = proc.stderr_path.read_text(errors="replace") \
        if proc.stderr_path and proc.stderr_path.exists() else ""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    levels = collections.Counter(re.findall(r'"level":"(\w+)"', plain)) + \
        collections.Counter(re.findall(r"^\S+ \[(\w+)\s*\]", plain, re.M))
    bad = {k: v for k, v in levels.items() if k in ("warning", "error", "critical")}
    if bad:
        notes.append(f"{proc.name} log has {bad}; last lines:\n" + "\n".join(
            ln for ln in text.splitlines() if "warning" in ln or "error" in ln)[-1500:])
    return {"format": log_format, "lines": text.count("\n"), "bytes": len(text.encode()),
            "levels": dict(levels)}


def edge_chain(tmp: Path, tag: str, procs: list[Proc], edge_args: list[str], body: dict,
               mock_tokens: int = 16) -> str:
    """mock worker <- router <- edge (plain HTTP, no key, no rate limit) from this tree's
    eldric, each appended to `procs` (the caller stops them); the edge's URL once it
    serves `body`. `edge_args`: the edge's own flags under test."""
    wport, rport, eport = free_port(), free_port(), free_port()
    exe, cwd = [sys.executable, "-m", "eldric"], Path(__file__).resolve().parents[1]
    assert Path.cwd() == cwd, "run it from the repository root: python bench/NAME.py"
    common = ["--bind", "127.0.0.1", "--log-level", "warning"]
    w = Proc("worker", [*exe, "--role", "worker", "--backend", "mock", "--mock-tokens",
                        str(mock_tokens), "--port", str(wport), "--data-dir",
                        str(tmp / f"w-{tag}"), *common], tmp / f"w-{tag}.log")
    procs.append(w)
    wait_healthy(w, f"http://127.0.0.1:{wport}/health")
    r = Proc("router", [*exe, "--role", "router", "--workers", f"http://127.0.0.1:{wport}",
                        "--port", str(rport), "--data-dir", str(tmp / f"r-{tag}"), *common],
             tmp / f"r-{tag}.log")
    procs.append(r)
    wait_healthy(r, f"http://127.0.0.1:{rport}/health")
    e = Proc("edge", [*exe, "--role", "edge", "--no-tls", "--http-port", str(eport),
                      "--routers", f"http://127.0.0.1:{rport}", "--no-require-api-key",
                      "--global-rpm", "0", "--per-ip-rpm", "0", "--per-key-rpm", "0",
                      *edge_args, "--data-dir", str(tmp / f"e-{tag}"), *common],
             tmp / f"e-{tag}.log")
    procs.append(e)
    url = f"http://127.0.0.1:{eport}"
    wait_healthy(e, url + "/health")
    wait_serving(e, url + "/v1/chat/completions", body)
    return url


@contextlib.contextmanager
def edge_chain_running(tmp: Path, tag: str, edge_args: list[str], body: dict,
                       mock_tokens: int = 16) -> Iterator[tuple[str, Proc]]:
    """edge_chain(), its processes stopped on leaving: (the edge's URL, its Proc)."""
    procs: list[Proc] = []
    try:
        url = edge_chain(tmp, tag, procs, edge_args, body, mock_tokens)
        yield url, procs[-1]
    finally:
        for p in reversed(procs):
            p.stop()
