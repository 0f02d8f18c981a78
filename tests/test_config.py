"""Precedence: flag > environment > file > role default; strictness of each layer."""

from __future__ import annotations

import json

import pytest

from eldric import config, registry
from eldric.cli import load_config
from eldric.errors import ConfigError


def _load(tmp_path, file_data=None, env=None, *, role="worker", quick=False, **flags):
    """One role's configuration as the CLI loads it (file, env, flags given as keywords)."""
    r = registry.load(role)
    path = None
    if file_data is not None:
        path = tmp_path / f"{role}.json"
        path.write_text(json.dumps(file_data))
    return load_config([r], flags, env or {}, str(path) if path else None, quick=quick)


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


def _edge(tmp_path, file_data=None, env=None, **kw):
    return _load(tmp_path, file_data, env, role="edge", **kw)


@pytest.mark.parametrize("text,ms", [("500", 500), ("500ms", 500), ("5s", 5000),
                                     ("1.5s", 1500), ("2m", 120_000), ("1h", 3_600_000),
                                     (" 30 S ", 30_000)])
def test_durations_take_units_in_flags_and_env(tmp_path, text, ms):
    assert _load(tmp_path, heartbeat_interval=text).roles["worker"].heartbeat_interval_ms == ms
    env = {"ELDRIC_WORKER_HEARTBEAT_INTERVAL_MS": text}
    assert _load(tmp_path, None, env).roles["worker"].heartbeat_interval_ms == ms
    # every Ms field, the process's too, not one flag
    loaded = _load(tmp_path, connect_timeout=text, grace_period=text)
    assert loaded.roles["worker"].connect_timeout_ms == ms
    assert loaded.process.grace_period_ms == ms


def test_a_fractional_delay_takes_units_too(tmp_path):
    assert _load(tmp_path, mock_token_delay="0.5ms").roles["worker"].mock_token_delay_ms == 0.5


@pytest.mark.parametrize("text", ["5x", "soon", "0", "0.5ms", "25h", "-1s", ""])
def test_a_bad_duration_names_the_flag_or_variable(tmp_path, text):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, heartbeat_interval=text)
    assert str(err.value).startswith("--heartbeat-interval: must be a duration")
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, None, {"ELDRIC_HEARTBEAT_INTERVAL_MS": text})
    assert str(err.value).startswith(
        "environment ELDRIC_HEARTBEAT_INTERVAL_MS: must be a duration")


@pytest.mark.parametrize("flag,value,source", [
    ("port", "99999", "--port"), ("max_body_size", "12", "--max-body-size"),
    ("max_attempts", "0", None)])
def test_a_value_out_of_bounds_is_reported_against_its_flag(tmp_path, flag, value, source):
    if source is None:  # a router flag: not the worker's
        router = registry.load("router")
        with pytest.raises(ConfigError) as err:
            load_config([router], {"max_attempts": value}, {})
        assert str(err.value).startswith("--max-attempts: must be an integer from 1 to 20")
        return
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, **{flag: value})
    assert str(err.value).startswith(f"{source}: must be an integer"), err.value
    assert "$" not in str(err.value)


def test_a_value_out_of_bounds_is_reported_against_its_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, None, {"ELDRIC_WORKER_PORT": "99999"})
    assert str(err.value).startswith("environment ELDRIC_WORKER_PORT: must be an integer")
    with pytest.raises(ConfigError) as err:  # a structured value: the key inside it
        _load(tmp_path, None, {"ELDRIC_TAGS": '["a", 1]'})
    assert str(err.value).startswith("environment ELDRIC_TAGS: `$[1]`: must be a string")


def test_a_bad_key_value_is_not_echoed(tmp_path):
    with pytest.raises(ConfigError) as err:
        _edge(tmp_path, None, {"ELDRIC_EDGE_AUTH_API_KEYS": '{"sk-secret-1": 5}'})
    assert "ELDRIC_EDGE_AUTH_API_KEYS" in str(err.value)
    assert "sk-secret" not in str(err.value)


def test_every_file_error_names_the_file(tmp_path):
    for data in ({"prot": 1}, {"port": 99999}, {"log_level": "loud"},
                 {"tls": {"cert": "x"}}, {"rate_limits": {"window_seconds": "soon"}}):
        with pytest.raises(ConfigError) as err:
            _edge(tmp_path, data)
        assert str(err.value).startswith(f"config file {tmp_path / 'edge.json'}: `$."), data


def test_rate_window_is_ms_and_takes_units(tmp_path):
    assert _edge(tmp_path).roles["edge"].rate_limits.window_ms == 60_000
    assert _edge(tmp_path, rate_window="2s").roles["edge"].rate_limits.window_ms == 2000
    env = {"ELDRIC_EDGE_RATE_LIMITS_WINDOW_MS": "1m"}
    assert _edge(tmp_path, None, env).roles["edge"].rate_limits.window_ms == 60_000


@pytest.mark.parametrize("text", ["60", "1", "0.5"])
def test_a_bare_rate_window_under_a_second_is_refused(tmp_path, text):
    """--rate-window was seconds: `--rate-window 60` must not silently mean 60 ms."""
    with pytest.raises(ConfigError, match="--rate-window") as info:
        _edge(tmp_path, rate_window=text)
    assert f"{text}s" in str(info.value)  # says what to write instead
    assert _edge(tmp_path, rate_window="500ms").roles["edge"].rate_limits.window_ms == 500
    assert _edge(tmp_path, rate_window="1000").roles["edge"].rate_limits.window_ms == 1000


def test_old_window_seconds_still_read_with_one_deprecation_line(tmp_path):
    loaded = _edge(tmp_path, {"rate_limits": {"window_seconds": 1.5, "per_ip_rpm": 7}})
    limits = loaded.roles["edge"].rate_limits
    assert limits.window_ms == 1500 and limits.per_ip_rpm == 7
    (line,) = loaded.warnings
    assert str(tmp_path / "edge.json") in line and "window_seconds" in line
    assert "deprecated" in line and "window_ms" in line
    # the new key wins when both are given
    loaded = _edge(tmp_path, {"rate_limits": {"window_seconds": 1, "window_ms": 250}})
    assert loaded.roles["edge"].rate_limits.window_ms == 250
    loaded = _edge(tmp_path, None, {"ELDRIC_EDGE_RATE_LIMITS_WINDOW_SECONDS": "30"})
    assert loaded.roles["edge"].rate_limits.window_ms == 30_000
    (line,) = loaded.warnings
    assert "ELDRIC_EDGE_RATE_LIMITS_WINDOW_SECONDS" in line and "deprecated" in line
    assert "ELDRIC_EDGE_RATE_LIMITS_WINDOW_MS" in line
    for bad in ("a minute", "inf", "nan", "-1", "0"):
        with pytest.raises(ConfigError, match="ELDRIC_RATE_LIMITS_WINDOW_SECONDS"):
            _edge(tmp_path, None, {"ELDRIC_RATE_LIMITS_WINDOW_SECONDS": bad})


def test_quick_start_edge_limits_nothing_unless_asked(tmp_path):
    limits = _edge(tmp_path, quick=True).roles["edge"].rate_limits
    assert (limits.per_ip_rpm, limits.per_key_rpm, limits.global_rpm) == (0, 0, 0)
    limits = _edge(tmp_path, quick=True, per_ip_rpm="30").roles["edge"].rate_limits
    assert (limits.per_ip_rpm, limits.global_rpm) == (30, 0)
    limits = _edge(tmp_path, {"rate_limits": {"global_rpm": 9}}, quick=True).roles["edge"]
    assert limits.rate_limits.global_rpm == 9 and limits.rate_limits.per_ip_rpm == 0
    assert _edge(tmp_path).roles["edge"].rate_limits.per_ip_rpm == 100  # not quick: as before


def test_unknown_role_variable_warns_with_the_likely_one(tmp_path):
    env = {"ELDRIC_WORKER_HEARTBEAT_INTERVAL": "5s",  # _MS forgotten
           "ELDRIC_WORKER_LOG_LEVEL": "debug",  # a process setting under a role
           "ELDRIC_WORKER_ZZZ": "1",
           "ELDRIC_WORKER_TAGS": "a",  # fine
           "ELDRIC_ROUTER_STRATEGYY": "random",  # a role not chosen: not ours to judge
           "ELDRIC_HEARTBEAT_INTERVL_MS": "1",  # generic, matches nothing
           "ELDRIC_SYNC_INTERVAL_MS": "1",  # generic, the router's (not chosen): warn
           "ELDRIC_LOG_FORMAT": "json"}  # fine
    loaded = _load(tmp_path, None, env)
    warnings = loaded.warnings
    assert len(warnings) == 5, warnings
    by_var = {w.split()[1]: w for w in warnings}
    assert set(by_var) == {"ELDRIC_WORKER_HEARTBEAT_INTERVAL", "ELDRIC_WORKER_LOG_LEVEL",
                           "ELDRIC_WORKER_ZZZ", "ELDRIC_HEARTBEAT_INTERVL_MS",
                           "ELDRIC_SYNC_INTERVAL_MS"}
    assert "did you mean ELDRIC_WORKER_HEARTBEAT_INTERVAL_MS?" in \
        by_var["ELDRIC_WORKER_HEARTBEAT_INTERVAL"]
    assert "ELDRIC_LOG_LEVEL" in by_var["ELDRIC_WORKER_LOG_LEVEL"]
    assert "did you mean" not in by_var["ELDRIC_WORKER_ZZZ"]
    assert "did you mean ELDRIC_HEARTBEAT_INTERVAL_MS?" in by_var["ELDRIC_HEARTBEAT_INTERVL_MS"]
    assert all(w.endswith("; ignored") for w in warnings)


def test_no_warning_for_variables_that_are_used(tmp_path):
    env = {"ELDRIC_CLOUD_BACKENDS": '[{"name": "x", "url": "http://h", '
                                    '"api_key": "$ELDRIC_MY_PROVIDER_KEY"}]',
           "ELDRIC_MY_PROVIDER_KEY": "sk-1",  # read by the backend, not a setting
           "ELDRIC_EDGE_PORT": "1",  # another role's
           "ELDRIC_PORT": "0"}
    assert _load(tmp_path, None, env, role="cloud").warnings == []


def test_each_role_env_hint_names_a_real_variable():
    import re

    for name in registry.available():
        role = registry.load(name)
        for field, hint in role.env_hints.items():
            known = {v for s in config.field_specs(role.config)
                     for v in config.env_names(s.name, name)}
            named = re.findall(r"ELDRIC_[A-Z_]+", hint)
            assert named and set(named) <= known, (name, field, hint)


def test_the_hint_for_the_quick_start_edge_port_works(tmp_path):
    """Under --role all the edge is plain HTTP: ELDRIC_EDGE_HTTP_PORT moves it,
    ELDRIC_EDGE_PORT does not (which is why the ambiguous --port error says so)."""
    edge = registry.load("edge")
    cfg = _edge(tmp_path, None, {"ELDRIC_EDGE_HTTP_PORT": "9123"}, quick=True).roles["edge"]
    assert cfg.no_tls and edge.listen(cfg) == (9123, None)
    cfg = _edge(tmp_path, None, {"ELDRIC_EDGE_PORT": "9124"}, quick=True).roles["edge"]
    assert edge.listen(cfg) == (8080, None)


def test_load_config_refuses_a_flag_no_chosen_role_has():
    """The public face of the CLI's loading (tests and embedders use it): a misspelt
    flag is an error naming it, not a KeyError."""
    worker = registry.load("worker")
    with pytest.raises(ConfigError, match="--backend-uri: no such option"):
        load_config([worker], {"backend_uri": "http://x"}, {})
    assert load_config([worker], {"backend-url": "http://x:1"}, {}).roles[
        "worker"].backend_url == "http://x:1"
