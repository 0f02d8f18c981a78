"""The eldric command as a user runs it: help, version, config errors, roles, plugins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def eldric(*args: str, env: dict | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eldric", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def hello_site(tmp_path) -> dict:
    """The example third-party role, installed as a distribution (a dist-info with an
    entry point on sys.path is exactly what pip leaves behind)."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "examples/third_party_role/eldric_hello", site / "eldric_hello")
    dist = site / "eldric_hello-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: eldric-hello\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[eldric.roles]\nhello = eldric_hello:ROLE\n")
    return {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_version():
    out = eldric("--version")
    assert out.returncode == 0 and out.stdout.strip().startswith("eldric ")


def test_help_lists_roles_and_role_options():
    out = eldric("--help")
    assert out.returncode == 0
    assert "Roles found: cloud, controller, edge, router, worker" in out.stdout
    out = eldric("--role", "worker", "--help")
    assert "--backend" in out.stdout and "--heartbeat-interval MS" in out.stdout


def _flat(text: str) -> str:
    return " ".join(text.split())  # click wraps help lines


def test_help_shows_each_default_and_variable():
    out = eldric("--role", "worker", "--help")
    assert out.returncode == 0
    text = _flat(out.stdout)
    assert ("[default: 30000; env: ELDRIC_WORKER_HEARTBEAT_INTERVAL_MS, "
            "ELDRIC_HEARTBEAT_INTERVAL_MS]") in text
    assert "[default: 8890; env: ELDRIC_WORKER_PORT, ELDRIC_PORT]" in text  # Role.port
    assert "[default: ollama; env: ELDRIC_WORKER_BACKEND, ELDRIC_BACKEND]" in text
    assert "[env: ELDRIC_WORKER_CONTROLLER_URL, ELDRIC_CONTROLLER_URL]" in text  # no default
    assert "[default: info; env: ELDRIC_LOG_LEVEL]" in text  # a process setting
    assert "5s" in text  # durations take units, and --help says so
    out = eldric("--role", "edge", "--help")
    text = _flat(out.stdout)
    assert "--rate-window MS" in text
    assert "[default: 60000; env: ELDRIC_EDGE_RATE_LIMITS_WINDOW_MS, " \
           "ELDRIC_RATE_LIMITS_WINDOW_MS]" in text
    assert "[default: 443; env: ELDRIC_EDGE_PORT, ELDRIC_PORT]" in text
    # --role all: a flag several roles take shows each role's default and the pattern
    text = _flat(eldric("--role", "all", "--help").stdout)
    assert "default: controller 8880, worker 8890," in text
    assert "env: ELDRIC_<ROLE>_PORT, ELDRIC_PORT]" in text
    assert "[default: 0; env: ELDRIC_EDGE_RATE_LIMITS_PER_IP_RPM," in text  # quick start


def test_bad_values_are_reported_against_their_flag_or_variable(tmp_path):
    for args, env, source in (
            (["--port", "99999"], {}, "--port"),
            (["--heartbeat-interval", "5x"], {}, "--heartbeat-interval"),
            ([], {"ELDRIC_WORKER_PORT": "99999"}, "environment ELDRIC_WORKER_PORT")):
        out = eldric("--role", "worker", "--data-dir", str(tmp_path), *args, env=env)
        assert out.returncode == 2, out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"eldric: {source}: must be "), line
        assert "$." not in line


def test_an_otel_endpoint_without_a_scheme_is_refused_at_start(tmp_path):
    """`--otel-endpoint 127.0.0.1:4318` (a common slip; the OTLP exporters want a URL) was
    accepted and then exported nothing: refused at start, as a bad flag is."""
    for value in ("127.0.0.1:4318", "collector", "ftp://x:4318"):
        out = eldric("--role", "worker", "--data-dir", str(tmp_path), "--otel-endpoint", value)
        assert out.returncode == 2, out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("eldric: --otel-endpoint: must be "), line


def test_two_mcp_servers_of_one_name_are_refused_at_start(tmp_path):
    """X-Eldric-Tools and GET /api/v1/plugins name an MCP server by its name: two of one
    name were both started, the status and the choice ambiguous."""
    cfg = tmp_path / "edge.json"
    cfg.write_text(json.dumps({"edge": {"mcp_servers": [
        {"name": "x", "command": "a"}, {"name": "x", "command": "b"}]}}))
    out = eldric("--role", "edge", "--config", str(cfg), "--data-dir", str(tmp_path))
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"eldric: config file {cfg}: ") and "'x'" in line, line


def test_warnings_for_unknown_and_deprecated_variables_reach_stderr(tmp_path):
    env = {"ELDRIC_EDGE_NO_TSL": "1", "ELDRIC_EDGE_RATE_LIMITS_WINDOW_SECONDS": "30",
           "ELDRIC_WORKER_NO_SUCH": "1"}  # the worker's is not this run's business
    out = eldric("--role", "edge", "--api-key", "k", "--data-dir", str(tmp_path), env=env)
    assert out.returncode == 2  # (no certificate: it stops right after the warnings)
    warnings = [line for line in out.stderr.splitlines() if line.startswith("eldric: warning:")]
    assert len(warnings) == 2, out.stderr
    assert "ELDRIC_EDGE_NO_TSL" in warnings[1] and "ELDRIC_EDGE_NO_TLS" in warnings[1]
    assert "ELDRIC_EDGE_RATE_LIMITS_WINDOW_SECONDS" in warnings[0] and "deprecated" in warnings[0]


def test_unknown_role_refused_with_the_known_ones():
    out = eldric("--role", "nosuch")
    assert out.returncode == 2
    assert out.stderr.strip() == "eldric: unknown role 'nosuch'; known roles: cloud, controller, edge, router, worker"
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("content,expected", [
    ('{"prot": 1}', "`$.prot`: unknown key (did you mean `port`?)"),
    ('{"port": "80"}', "`$.port`: must be an integer from 0 to 65535, got '80'"),
    ('{"port": 99999}', "`$.port`: must be an integer from 0 to 65535, got 99999"),
    ('{"backend": "gpt"}', "`$.backend`: must be one of: "),
    ('{"heartbeat_interval_ms": 0}', "`$.heartbeat_interval_ms`: must be a duration from 1 ms"),
    ('{"heartbeat_interval_ms": "5s"}', "`$.heartbeat_interval_ms`: must be a duration"),
    ('{"port": 80,', "invalid JSON"),
    ('[1]', "expected a JSON object"),
    ('{"worker": {"portt": 1}}', "`$.worker.portt`: unknown key (did you mean `port`?)"),
    ('{"worker": {"tags": "gpu"}}', "`$.worker.tags`: must be a list, got 'gpu'"),
    ('{"log_levl": "info", "worker": {}}', "unknown key `log_levl` at the top level "
                                           "(did you mean `log_level`?)"),
    ('{"log_level": "loud"}', "`$.log_level`: must be one of: "),
])
def test_bad_config_file_is_one_clear_line(tmp_path, content, expected):
    """Every file error is one line naming the file and the key, in eldric's words (the
    same whichever msgspec is installed), exit 2."""
    cfg = tmp_path / "c.json"
    cfg.write_text(content)
    out = eldric("--role", "worker", "--config", str(cfg), "--data-dir", str(tmp_path))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"eldric: config file {cfg}: "), out.stderr
    assert expected in lines[0], lines[0]


def test_missing_config_file(tmp_path):
    out = eldric("--role", "worker", "--config", str(tmp_path / "nope.json"))
    assert out.returncode == 2
    assert out.stderr.strip() == f"eldric: config file {tmp_path / 'nope.json'}: not found"


def test_bad_flag_and_env_values(tmp_path):
    out = eldric("--role", "worker", "--port", "eighty")
    assert out.returncode == 2 and "--port" in out.stderr and "eighty" in out.stderr
    out = eldric("--role", "worker", env={"ELDRIC_WORKER_HEARTBEAT_INTERVAL_MS": "soon"})
    assert out.returncode == 2
    assert "ELDRIC_WORKER_HEARTBEAT_INTERVAL_MS" in out.stderr


def test_port_in_use_is_refused_cleanly(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = eldric("--role", "worker", "--backend", "mock", "--bind", "127.0.0.1",
                     "--port", str(port), "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_examples_load(tmp_path):
    """Every example config loads through the same path as `eldric --config` (they cannot rot)."""
    from eldric import config, registry

    for path in sorted((ROOT / "examples").glob("*.json")):
        data = json.loads(path.read_text())
        names = [n for n in data if n in registry.available()] or [path.stem]
        roles = [registry.load(n) for n in names]
        loaded = config.load({r.name: (r.config, r.defaults()) for r in roles},
                             str(path), {}, {})
        assert set(loaded.roles) == set(names), path


def test_third_party_role_found_and_run(hello_site, tmp_path):
    out = eldric("--help", env=hello_site)
    assert "Roles found: cloud, controller, edge, hello, router, worker" in out.stdout
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "eldric", "--role", "hello", "--port", str(port),
                          "--bind", "127.0.0.1", "--greeting", "hi there",
                          "--data-dir", str(tmp_path)],
                         env={**os.environ, **hello_site}, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        body = _get_json(f"http://127.0.0.1:{port}/hello", p)
        assert body["greeting"] == "hi there"
        health = _get_json(f"http://127.0.0.1:{port}/api/v1/health", p)
        assert health["role"] == "hello" and health["status"] == "healthy"
    finally:
        p.terminate()
        p.wait(10)


def test_ambiguous_flag_between_two_roles(hello_site):
    out = eldric("--role", "worker,hello", "--port", "9000", env=hello_site)
    assert out.returncode == 2
    assert "--port is ambiguous: roles worker, hello" in out.stderr
    assert "ELDRIC_WORKER_PORT, ELDRIC_HELLO_PORT" in out.stderr


@pytest.mark.parametrize("roles", ["worker,edge", "all"])
def test_ambiguous_port_suggests_what_works_for_each_role(roles):
    """The edge in plain HTTP (as under --role all) listens on http_port: the error says
    ELDRIC_EDGE_HTTP_PORT, the variable that moves it (tests/test_config.py checks it does)."""
    out = eldric("--role", roles, "--port", "9000")
    assert out.returncode == 2
    assert "--port is ambiguous" in out.stderr and "ELDRIC_WORKER_PORT" in out.stderr
    assert "ELDRIC_EDGE_HTTP_PORT (with --no-tls; ELDRIC_EDGE_PORT for HTTPS)" in out.stderr


def test_two_roles_one_process_each_with_its_section(hello_site, tmp_path):
    wport, hport = free_port(), free_port()
    cfg = tmp_path / "cluster.json"
    cfg.write_text(json.dumps({
        "log_level": "warning",
        "worker": {"port": wport, "bind_address": "127.0.0.1", "backend": "mock"},
        "hello": {"port": hport, "bind_address": "127.0.0.1", "greeting": "from the file"},
    }))
    # --greeting only hello declares; --bind both declare but it is shared: both fine.
    p = subprocess.Popen([sys.executable, "-m", "eldric", "--role", "worker,hello",
                          "--config", str(cfg), "--greeting", "from the flag",
                          "--bind", "127.0.0.1", "--data-dir", str(tmp_path)],
                         env={**os.environ, **hello_site}, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        assert _get_json(f"http://127.0.0.1:{hport}/hello", p)["greeting"] == "from the flag"
        health = _get_json(f"http://127.0.0.1:{wport}/health", p)
        assert health["backend"]["type"] == "mock"
        detail = _get_json(f"http://127.0.0.1:{wport}/api/v1/health", p)
        assert detail["roles"] == ["worker", "hello"]
    finally:
        p.terminate()
        p.wait(10)


def _get_json(url: str, proc: subprocess.Popen, timeout: float = 15) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"eldric exited {proc.returncode}: {proc.stdout.read()}")
        try:
            return json.loads(urllib.request.urlopen(url, timeout=2).read())
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
