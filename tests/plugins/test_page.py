"""The page-side plugins: /plugins/index.json and /plugins/<id>/<file> serve the
enabled action and widget plugins only (never a server-side plugin's files, a disabled
one's, the manifest or valves, or a path out of the directory), behind the chat page's
key; and in headless Chromium on /chat (tests/browser.py, DevTools protocol) the shipped
word-count action puts its button on a reply and shows the count, the
tokens-per-second widget shows the reply's speed, within the page's CSP."""

from __future__ import annotations

import asyncio
import json
import aiohttp
import pytest

from tests import browser
from tests.browser import chromium
from tests.plugins.kit import KEY, edge, plugins_dir
from tests.conftest import run_eldric

SCREENSHOT_COPY = "/tmp/eldric-chat-plugins.png"


async def test_only_enabled_page_plugins_are_served_and_nothing_outside_them(tmp_path):
    plugins = plugins_dir(tmp_path, "word-count", "tokens-per-second", "calculator",
                          enabled=("word-count", "calculator"))
    (plugins / "word-count" / "valves.json").write_text('{"secret": "s3cret"}')
    (plugins / "word-count" / "link.py").symlink_to(plugins / "calculator" / "main.py")
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w, \
            edge(tmp_path, w["worker"], plugins, api_key=KEY) as e:
        base = e["edge"]
        auth = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/plugins/index.json") as r:
                assert r.status == 401
            async with s.get(base + "/plugins/index.json", headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["plugins"] == [{
                    "id": "word-count", "type": "action", "name": "Word count",
                    "script": "/plugins/word-count/main.js"}]
            async with s.get(base + "/plugins/word-count/main.js", headers=auth) as r:
                assert r.status == 200 and r.content_type == "text/javascript"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert "registerAction" in await r.text()
            async with s.get(base + "/plugins/word-count/main.js",
                             cookies={"eldric_key": KEY}) as r:
                assert r.status == 200  # the chat page's cookie is enough
            for path, code in (
                    ("/plugins/tokens-per-second/main.js", "plugin_not_found"),  # disabled
                    ("/plugins/calculator/main.py", "plugin_not_found"),  # server side
                    ("/plugins/word-count/manifest.json", "plugin_file_not_found"),
                    ("/plugins/word-count/valves.json", "plugin_file_not_found"),
                    ("/plugins/word-count/..%2fcalculator%2fmain.py", "plugin_file_not_found"),
                    ("/plugins/word-count/sub/..%2f..%2f..%2fenabled.json",
                     "plugin_file_not_found"),
                    # dot segments: resolved by the server before routing, to no route
                    ("/plugins/word-count/%2e%2e/%2e%2e/enabled.json", "not_found"),
                    ("/plugins/word-count/nothing.js", "plugin_file_not_found"),
                    ("/plugins/word-count/link.py", "plugin_file_not_found"),  # symlink out
                    ("/plugins/nobody/main.js", "plugin_not_found")):
                async with s.get(base + path, headers=auth) as r:
                    body = await r.json()
                    assert (r.status, body["error"]["code"]) == (404, code), (path, body)


# A page plugin that throws: its widget's mount, its action's run.
BAD = """window.eldric.registerWidget({id: "bad", title: "Bad", mount: () => { throw new Error("no"); }});
window.eldric.registerAction({id: "bad-action", label: "Explode", run: () => { throw new Error("boom"); }});
"""


def _page_plugin(plugins, pid: str, kind: str, script: str) -> None:  # type: ignore[no-untyped-def]
    d = plugins / pid
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"id": pid, "name": pid, "type": kind,
                                                 "entry": "main.js"}))
    (d / "main.js").write_text(script)
    enabled = json.loads((plugins / "enabled.json").read_text())
    (plugins / "enabled.json").write_text(json.dumps([*enabled, pid]))


ACTION_DONE = """(() => {
    const a = document.querySelectorAll('[data-role="assistant"]');
    const last = a[a.length - 1];
    return !!last && last.dataset.state === "done"
        && !!last.querySelector('button.plugin-action[data-plugin="word-count"]');
})()"""


@pytest.mark.timeout(90)
async def test_the_word_count_action_and_tokens_per_second_widget_on_chat(tmp_path):
    browser.need_chromium()
    plugins = plugins_dir(tmp_path, "word-count", "tokens-per-second")
    _page_plugin(plugins, "bad", "widget", BAD)
    async with asyncio.timeout(75):
        async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                              backend="mock", mock_token_delay=20) as w, \
                edge(tmp_path, w["worker"], plugins) as e:
            base = e["edge"].rstrip("/")
            async with chromium(tmp_path) as cdp:
                await cdp.navigate(f"{base}/login")  # signed in: the key in a cookie
                await cdp.js(f"""(() => {{
                    const input = document.querySelector('input[name=api_key]');
                    input.value = {json.dumps(KEY)};
                    input.form.requestSubmit();
                    return true;
                }})()""")
                await cdp.wait_for("location.pathname === '/chat' && document.readyState === 'complete'",
                                   "the chat page after signing in")
                await cdp.wait_for("!!document.querySelector('.widget[data-plugin=\"tokens-per-second\"]')",
                                   "the widget's panel")
                assert await cdp.js("document.getElementById('widgets').hidden") is False
                assert await cdp.js("document.querySelector('.widget-title').textContent") \
                    == "Tokens per second"
                await cdp.wait_for("!document.getElementById('model').disabled", "the model list")
                await cdp.click("#prompt")
                await cdp.type("Tell me about foxes")
                await cdp.click("#send")
                await cdp.wait_for(ACTION_DONE, "the reply with the word-count button")
                reply = await cdp.js("document.querySelector('[data-role=\"assistant\"] .msg-body').textContent")
                words = len(reply.split())
                await cdp.click('button.plugin-action[data-plugin="word-count"]')
                shown = await cdp.wait_for(
                    "document.querySelector('.plugin-result[data-plugin=\"word-count\"]').textContent",
                    "the word count beside its button")
                assert shown == f"{words} words", (shown, reply)
                # a plugin that throws loses its own panel or result, never the page
                assert await cdp.js("!document.querySelector('.widget[data-plugin=\"bad\"]')")
                await cdp.click('button.plugin-action[data-plugin="bad-action"]')
                failed = await cdp.wait_for(
                    "document.querySelector('.plugin-result[data-plugin=\"bad-action\"]').textContent",
                    "the failed action's note")
                assert failed == "Explode failed"
                tps = await cdp.wait_for("(() => { const t = document.querySelector('.tps');"
                                         " return t && t.textContent.includes('tok/s') && t.textContent; })()",
                                         "the widget's tokens per second")
                tokens = int(await cdp.js("document.querySelector('.tps').dataset.tokens"))
                assert tokens >= 3 and f"({tokens} tokens)" in tps, tps
                rate = float(tps.split()[0])
                assert 0 < rate < 1000, tps  # mock: 20 ms a token, ~50 tok/s
                # the scripts came from /plugins/, same origin, inside the CSP
                srcs = await cdp.js("[...document.querySelectorAll('script[data-plugin]')].map(s => s.src)")
                assert sorted(srcs) == sorted([f"{base}/plugins/word-count/main.js",
                                               f"{base}/plugins/tokens-per-second/main.js",
                                               f"{base}/plugins/bad/main.js"])
                assert await cdp.screenshot(tmp_path / "plugins.png") > 10_000
                browser.keep_png(tmp_path / "plugins.png", SCREENSHOT_COPY)
