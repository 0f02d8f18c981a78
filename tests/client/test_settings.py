"""Where the clients connect (eldric.client.settings): flag > ELDRIC_* > client.json > the
quick start, a bad file refused in one line naming it; and the roles do not warn about the
clients' variables in a shell that sets them."""

from __future__ import annotations

import json

import pytest

from eldric import registry
from eldric.cli import load_config
from eldric.client import settings


def test_quick_start_with_nothing_configured(tmp_path):
    got = settings.load({"XDG_CONFIG_HOME": str(tmp_path)})
    assert (got.url, got.controller_url, got.router_url) == (
        "http://127.0.0.1:8080", "http://127.0.0.1:8880", "http://127.0.0.1:8881")
    assert got.api_key is None and got.admin_key is None and got.model is None


def test_flag_over_env_over_file(tmp_path):
    (tmp_path / "eldric").mkdir()
    (tmp_path / "eldric" / "client.json").write_text(json.dumps(
        {"url": "http://file:1/", "api_key": "file-key", "model": "file-model",
         "admin_key": "file-admin", "router_url": "http://file:2"}))
    env = {"XDG_CONFIG_HOME": str(tmp_path), "ELDRIC_URL": "http://env:2",
           "ELDRIC_API_KEY": "env-key"}
    got = settings.load(env, url="http://flag:3", api_key=None)
    assert got.url == "http://flag:3"  # the flag
    assert got.api_key == "env-key"  # the environment, the flag not given
    assert (got.model, got.admin_key) == ("file-model", "file-admin")  # the file
    assert got.router_url == "http://file:2"
    assert settings.load(env).url == "http://env:2"
    assert settings.load({"XDG_CONFIG_HOME": str(tmp_path)}).url == "http://file:1"


@pytest.mark.parametrize("text", ['{"urll": "http://x"}', "{not json", '{"url": 5}', "{",
                                  "[]"])
def test_a_wrong_file_is_one_line_naming_it(tmp_path, text):
    (tmp_path / "eldric").mkdir()
    (tmp_path / "eldric" / "client.json").write_text(text)
    with pytest.raises(settings.SettingsError) as exc:
        settings.load({"XDG_CONFIG_HOME": str(tmp_path)})
    line = str(exc.value)
    assert line.startswith("error: ") and "client.json" in line and "\n" not in line


def test_roles_do_not_warn_about_the_clients_variables():
    env = {"ELDRIC_URL": "http://127.0.0.1:8080", "ELDRIC_ROUTER_URL": "http://r:8881",
           "ELDRIC_MODEL": "m", "ELDRIC_CONTROLER_URL": "typo"}
    loaded = load_config(registry.resolve("router"), {}, env)
    assert not any(v in w for w in loaded.warnings
                   for v in ("ELDRIC_URL", "ELDRIC_ROUTER_URL", "ELDRIC_MODEL"))
    assert any("ELDRIC_CONTROLER_URL" in w for w in loaded.warnings)  # still warned
