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


def test_unknown_role_refused_with_the_known_ones():
    out = eldric("--role", "nosuch")
    assert out.returncode == 2
    assert out.stderr.strip() == "eldric: unknown role 'nosuch'; known roles: cloud, controller, edge, router, worker"
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("content,expected", [
    ('{"prot": 1}', "unknown field `prot`"),
    ('{"port": "80"}', "Expected `int`, got `str` - at `$.port`"),
    ('{"port": 99999}', "Expected `int` <= 65535 - at `$.port`"),
    ('{"backend": "gpt"}', "Invalid enum value 'gpt' (expected one of: embedded, llamacpp"),
    ('{"heartbeat_interval_ms": 0}', "at `$.heartbeat_interval_ms`"),
    ('{"port": 80,', "invalid JSON"),
    ('[1]', "expected a JSON object"),
    ('{"worker": {"portt": 1}}', "unknown field `portt` - at `$.worker`"),
    ('{"worker": {"tags": "gpu"}}', "Expected `array`, got `str` - at `$.worker.tags`"),
])
def test_bad_config_file_is_one_clear_line(tmp_path, content, expected):
    cfg = tmp_path / "c.json"
    cfg.write_text(content)
    out = eldric("--role", "worker", "--config", str(cfg), "--data-dir", str(tmp_path))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eldric: "), out.stderr
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
    assert "ELDRIC_<ROLE>_PORT" in out.stderr


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
