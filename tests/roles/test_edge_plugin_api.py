"""The plugins admin API: the admin key, valves round trips (secrets masked, bad values
400 naming the field, valves.json written and handed to the running child), reload,
and a plugin's own key into the edge."""

from __future__ import annotations

import json

import aiohttp
import openai

from tests.fakes import scripted
from tests.roles.plugin_kit import ADMIN, MODEL, chat, edge, enable, sdk, status, write_plugin

ECHO_VALVES = """
from eldric import plugin

print("echo plugin up")  # at import: stdout is already the log's, not the wire

@plugin.inlet
def inlet(body, user):
    body["messages"].append({"role": "system", "content": "valves=" + repr(sorted(plugin.valves.items()))})
    return body

plugin.run()
"""
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["level"],
          "properties": {"level": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
                         "api_key": {"type": "string", "format": "password"},
                         "token": {"type": "string", "x-secret": True},
                         "label": {"type": "string", "default": "x"}}}


async def test_valves_round_trip_with_secrets_masked(tmp_path, aiohttp_server, capfd):
    script = await scripted.serve(aiohttp_server, [MODEL])
    plugins = tmp_path / "plugins"
    d = write_plugin(plugins, "knobs", ECHO_VALVES, valves=SCHEMA)
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "knobs")
        v = url + "/api/v1/plugins/knobs/valves"
        async with s.get(v, headers=ADMIN) as r:
            got = await r.json()
        assert got["valves"] == {"level": 2, "label": "x"} and got["schema"] == SCHEMA
        new = {"level": 4, "api_key": "sk-very-secret", "token": "tok-secret", "label": "y"}
        async with s.put(v, json=new, headers=ADMIN) as r:
            assert r.status == 200
            body = await r.text()
        assert "very-secret" not in body and "tok-secret" not in body
        assert json.loads(body)["valves"] == {"level": 4, "api_key": "********",
                                              "token": "********", "label": "y"}
        assert json.loads((d / "valves.json").read_text())["api_key"] == "sk-very-secret"
        assert (d / "valves.json").stat().st_mode & 0o077 == 0  # the edge's user only
        # the running child has them at once
        client = sdk(url)
        await chat(client, "hi")
        assert "('api_key', 'sk-very-secret')" in script.calls[-1].system
        assert "('level', 4)" in script.calls[-1].system
        # what GET gave, sent back with one change: the secrets stay as they were
        async with s.get(v, headers=ADMIN) as r:
            got = await r.json()
        assert "very-secret" not in json.dumps(got)
        got["valves"]["level"] = 5
        async with s.put(v, json=got, headers=ADMIN) as r:
            assert r.status == 200
        stored = json.loads((d / "valves.json").read_text())
        assert stored["api_key"] == "sk-very-secret" and stored["level"] == 5
        # bad values: 400 naming the field, nothing stored
        for bad, field in (({"level": 9}, "level"), ({"level": "high"}, "level"),
                           ({"level": 3, "nope": 1}, "nope"), ({"api_key": 5, "level": 1}, "api_key")):
            async with s.put(v, json=bad, headers=ADMIN) as r:
                err = (await r.json())["error"]
                assert r.status == 400 and err["param"] == field, (bad, err)
                assert err["code"] == "invalid_valves" and field in err["message"]
                assert "5" not in err["message"] or field != "api_key"  # a secret never quoted
        async with s.put(v, data=b"[1,", headers=ADMIN) as r:
            assert r.status == 400
        assert json.loads((d / "valves.json").read_text())["level"] == 5
        await client.close()
    logged = capfd.readouterr()
    lines = (logged.out + logged.err).splitlines()
    assert "plugin_started" in logged.out + logged.err  # the log is what was read here
    assert any("plugin_stderr" in ln and "echo plugin up" in ln and "plugin=knobs" in ln
               for ln in lines)  # the child's stderr, with its id
    assert "sk-very-secret" not in logged.out + logged.err  # the secret never reached it


async def test_admin_key_unknown_plugin_and_reload(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text="fine")
    plugins = tmp_path / "plugins"
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        for method, path in (("GET", ""), ("POST", "/reload"), ("POST", "/x/enable"),
                             ("GET", "/x/valves"), ("PUT", "/x/valves")):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with s.request(method, url + "/api/v1/plugins" + path,
                                     headers=headers, json={}) as r:
                    assert r.status == 401, (method, path)
        async with s.post(url + "/api/v1/plugins/nope/enable", headers=ADMIN) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "plugin_not_found"
        async with s.get(url + "/api/v1/plugins", headers=ADMIN) as r:
            assert (await r.json())["plugins"] == []
        # a new directory is picked up by reload, disabled until enabled
        write_plugin(plugins, "late", ECHO_VALVES)
        async with s.post(url + "/api/v1/plugins/reload", headers=ADMIN) as r:
            got = await r.json()
        assert got["added"] == ["late"] and got["plugins"][0]["enabled"] is False
        await enable(s, url, "late")
        client = sdk(url)
        await chat(client, "hi")
        assert "valves=[]" in script.calls[-1].system
        # a changed manifest: the child is restarted with it
        write_plugin(plugins, "late", ECHO_VALVES, priority=5)
        async with s.post(url + "/api/v1/plugins/reload", headers=ADMIN) as r:
            assert (await r.json())["changed"] == ["late"]
        assert (await status(s, url, "late"))["priority"] == 5
        # a removed one is stopped and gone
        for f in (plugins / "late").iterdir():
            f.unlink()
        (plugins / "late").rmdir()
        async with s.post(url + "/api/v1/plugins/reload", headers=ADMIN) as r:
            assert (await r.json())["removed"] == ["late"]
        await chat(client, "hi")
        assert "valves" not in script.calls[-1].system
        await client.close()


async def test_a_plugins_key_is_a_client_of_the_edge(tmp_path, aiohttp_server):
    """initialize hands the child the edge's URL and a key the edge takes as client
    plugin:<id> (how a pipe calls the cluster), on an edge that requires keys. Here an
    inlet for model "ask" asks model "m" through the edge and sends its answer on."""
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(contains="question", text="from the cluster")
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "caller", """
import json, urllib.request
from eldric import plugin

@plugin.inlet
def inlet(body, user):
    req = urllib.request.Request(plugin.edge_url + "/v1/chat/completions",
        data=json.dumps({"model": "m", "messages": body["messages"]}).encode(),
        headers={"Authorization": "Bearer " + plugin.token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        answer = json.load(r)["choices"][0]["message"]["content"]
    return {"model": "m", "messages": [{"role": "user", "content": "it said: " + answer}]}

plugin.run()
""", applies_to=["ask"], timeout_ms=5000)
    async with edge(tmp_path, script, plugins, require_api_key=True, api_key=["sk-one"]) as url, \
            aiohttp.ClientSession() as s:
        await enable(s, url, "caller")
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="sk-one", max_retries=0)
        await client.chat.completions.create(
            model="ask", messages=[{"role": "user", "content": "a question"}])
        assert [c.last_user for c in script.calls] == ["a question", "it said: from the cluster"]
        assert script.calls[0].headers.get("Authorization") is None  # the key stays at the edge
        async with s.post(url + "/v1/chat/completions", json={"model": MODEL, "messages": []},
                          headers={"Authorization": "Bearer sk-plugin-guess"}) as r:
            assert r.status == 401
        async with s.post(url + "/api/v1/plugins/caller/disable", headers=ADMIN) as r:
            assert r.status == 200
        await client.close()
