"""Where the clients connect (eldric.client.settings): flag > ELDRIC_* > client.json > the
quick start, a bad file refused by name; and the roles do not warn about the clients'
variables in a shell that sets them."""

from __future__ import annotations

import pytest

from eldric import registry
from eldric.cli import load_config
from eldric.client import settings


def test_the_quick_start_with_nothing_set(tmp_path):
    got = settings.load({"XDG_CONFIG_HOME": str(tmp_path)})
    assert (got.url, got.controller_url, got.router_url) == (
        "http://127.0.0.1:8080", "http://127.0.0.1:8880", "http://127.0.0.1:8881")
    assert got.api_key is None and got.admin_key is None


def test_the_environment_beats_the_file(tmp_path):
    (tmp_path / "eldric").mkdir()
    (tmp_path / "eldric" / "client.json").write_text(
        '{"url": "http://file:1", "api_key": "from-file", "router_url": "http://file:2"}')
    env = {"XDG_CONFIG_HOME": str(tmp_path), "ELDRIC_URL": "http://env:1"}
    got = settings.load(env)
    assert got.url == "http://env:1" and got.api_key == "from-file"
    assert got.router_url == "http://file:2"


@pytest.mark.parametrize("text", ['{"urll": "x"}', '{"url": 5}', "{", "[]"])
def test_a_bad_file_is_refused_naming_it(tmp_path, text):
    (tmp_path / "eldric").mkdir()
    (tmp_path / "eldric" / "client.json").write_text(text)
    with pytest.raises(settings.SettingsError, match="client.json"):
        settings.load({"XDG_CONFIG_HOME": str(tmp_path)})


def test_roles_do_not_warn_about_the_clients_variables():
    env = {"ELDRIC_URL": "http://127.0.0.1:8080", "ELDRIC_ROUTER_URL": "http://r:8881",
           "ELDRIC_CONTROLER_URL": "typo"}
    loaded = load_config(registry.resolve("router"), {}, env)
    assert not any("ELDRIC_URL" in w or "ELDRIC_ROUTER_URL" in w for w in loaded.warnings)
    assert any("ELDRIC_CONTROLER_URL" in w for w in loaded.warnings)  # still warned
