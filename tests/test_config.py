"""Precedence: flag > environment > file > role default; strictness of each layer."""

from __future__ import annotations

import json

import pytest

from eldric import config, registry
from eldric.cli import _flag_table, _flag_values
from eldric.errors import ConfigError


def _load(tmp_path, file_data=None, env=None, **flags):
    worker = registry.load("worker")
    path = None
    if file_data is not None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(file_data))
    fv = _flag_values([worker], _flag_table([worker]), {"opt_" + k: v for k, v in flags.items()})
    return config.load({"worker": (worker.config, worker.defaults())},
                       str(path) if path else None, env or {}, fv)


def test_defaults(tmp_path):
    cfg = _load(tmp_path).roles["worker"]
    assert cfg.port == 8890 and cfg.backend == "ollama" and cfg.bind_address == "0.0.0.0"
    assert cfg.heartbeat_interval_ms == 30000 and cfg.connect_timeout_ms == 5000
    assert cfg.first_byte_timeout_ms == 300000 and cfg.idle_timeout_ms == 120000
    assert cfg.max_body_bytes == 32 * 1024 * 1024


def test_file_env_flag_precedence(tmp_path):
    file_data = {"port": 1111, "backend": "vllm", "tags": ["a"], "heartbeat_interval_ms": 5}
    env = {"ELDRIC_WORKER_PORT": "2222", "ELDRIC_TAGS": "b,c", "ELDRIC_LOG_LEVEL": "debug"}
    loaded = _load(tmp_path, file_data, env, port="3333")
    cfg = loaded.roles["worker"]
    assert cfg.port == 3333  # flag wins
    assert cfg.tags == ["b", "c"]  # env beats file
    assert cfg.backend == "vllm"  # file beats default
    assert cfg.heartbeat_interval_ms == 5
    assert loaded.process.log_level == "debug"


def test_role_specific_env_beats_generic(tmp_path):
    env = {"ELDRIC_PORT": "1000", "ELDRIC_WORKER_PORT": "2000"}
    assert _load(tmp_path, None, env).roles["worker"].port == 2000


def test_sub_second_timers_allowed(tmp_path):
    cfg = _load(tmp_path, None, None, heartbeat_interval="50", health_interval="20").roles["worker"]
    assert cfg.heartbeat_interval_ms == 50 and cfg.health_check_interval_ms == 20


def test_env_errors_name_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="ELDRIC_WORKER_PORT"):
        _load(tmp_path, None, {"ELDRIC_WORKER_PORT": "x"})


def test_unknown_top_level_section_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown key `routr`"):
        _load(tmp_path, {"worker": {}, "routr": {}})
