"""The edge's chat page, driven in the system Chromium through the DevTools protocol.

A worker on the mock backend, the edge in front of it with an API key, and a headless
Chromium (Debian's `chromium` package, nothing downloaded) steered over its DevTools
WebSocket: the test types and clicks with real input events, the page's JS does the rest.
Covered: the login redirect and a wrong key, the model list, a streamed reply that grows
as tokens arrive, Enter/Shift+Enter, Markdown rendered safely, the history surviving a
reload, the phone layout, and sign-out. Screenshots go to /tmp/eldric-chat*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time

import aiohttp
import pytest

from tests import browser
from tests.browser import CDP, chromium
from tests.conftest import run_eldric

API_KEY = "sk-chat-test"
MOCK_TEXT = "The quick brown fox"
TEST_TIMEOUT = 60  # seconds, the whole test
SCREENSHOT_COPY = "/tmp/eldric-chat.png"
PHONE_SCREENSHOT_COPY = "/tmp/eldric-chat-phone.png"
DESKTOP = (1280, 820)
PHONE = (390, 844)

# Installed before sending: records the last assistant message's text length at every
# DOM change, to prove the reply appeared piece by piece rather than all at once.
SAMPLER = """(() => {
    window.__lengths = [];
    const box = document.getElementById("messages");
    new MutationObserver(() => {
        const all = box.querySelectorAll('[data-role="assistant"] .msg-body');
        const last = all[all.length - 1];
        if (last) window.__lengths.push(last.textContent.length);
    }).observe(box, {subtree: true, childList: true, characterData: true});
    return true;
})()"""

STREAM_DONE = """(() => {
    const a = document.querySelectorAll('[data-role="assistant"]');
    const last = a[a.length - 1];
    return a.length >= %d && last.dataset.state === "done" && !document.getElementById("stop").offsetParent
        && last.textContent.includes(%s);
})()"""

# The page's pure helpers, checked in the browser that runs them.
UNIT_CHECKS = r"""(() => {
    const out = {};
    // SSE split anywhere (even inside "\r\n" and inside multi-byte UTF-8) gives the same events.
    const wire = 'data: {"a":"h\u00e9llo"}\r\n\r\n: keep-alive\n\ndata: one\ndata: two\n\ndata: [DONE]\n\n';
    const bytes = new TextEncoder().encode(wire);
    const whole = [], split = [];
    let p = EldricChat.createSSEParser((d) => whole.push(d));
    p.push(wire); p.end();
    const dec = new TextDecoder();
    p = EldricChat.createSSEParser((d) => split.push(d));
    for (const b of bytes) p.push(dec.decode(new Uint8Array([b]), {stream: true}));
    p.end();
    out.sse = JSON.stringify(whole) === JSON.stringify(split) && whole.length === 3
        && whole[1] === "one\ntwo" && whole[0].includes("h\u00e9llo");
    // Markdown: escaped, structured, links only for http(s).
    const md = [
        "Hi <img src=x onerror=alert(1)> **bold** *it* `code<b>`",
        "",
        "- one",
        "- [ok](https://example.com/x) and [bad](javascript:alert(1))",
        "",
        "```python",
        "print('<script>') # hi",
        "```",
        "<script>document.title='pwned'</script>",
    ].join("\n");
    const div = document.createElement("div");
    div.append(EldricChat.renderMarkdown(md));
    const links = [...div.querySelectorAll("a")];
    out.markdown = {
        unsafe: div.querySelectorAll("img, script, b").length,
        strong: div.querySelector("strong")?.textContent,
        em: div.querySelector("em")?.textContent,
        code: div.querySelector("p code")?.textContent,
        items: div.querySelectorAll("ul > li").length,
        links: links.map((a) => [a.getAttribute("href"), a.rel, a.textContent]),
        block: div.querySelector(".code-block pre code")?.textContent,
        copy: !!div.querySelector(".code-block button"),
        text: div.textContent.includes("<script>document.title='pwned'</script>"),
    };
    return out;
})()"""


@pytest.mark.timeout(TEST_TIMEOUT + 15)
async def test_chat_page_logs_in_streams_and_keeps_history(tmp_path):
    browser.need_chromium()
    started = time.monotonic()
    async with asyncio.timeout(TEST_TIMEOUT):
        async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                              backend="mock", mock_token_delay=20) as w:
            async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                                  bind="127.0.0.1", routers=w["worker"],
                                  api_key=API_KEY) as e:
                base = e["edge"].rstrip("/")
                async with chromium(tmp_path) as cdp:
                    await _drive(cdp, base, tmp_path)
    print(f"chat screenshots: {SCREENSHOT_COPY}, {PHONE_SCREENSHOT_COPY} "
          f"({time.monotonic() - started:.1f}s)")


async def _drive(cdp: CDP, base: str, tmp_path) -> None:
    await cdp.viewport(*DESKTOP, mobile=False)

    # 1. Without a key cookie, /chat sends the browser to /login.
    await cdp.navigate(f"{base}/chat")
    await cdp.wait_for("location.pathname === '/login' && !!document.querySelector('input[name=api_key]')",
                       "the redirect to /login")
    assert await cdp.js("document.getElementById('error').hidden") is True, "error shown before any attempt"

    # 2. A wrong key: back to the login page, which says so.
    await cdp.js("""(() => {
        const input = document.querySelector('input[name=api_key]');
        input.value = 'sk-wrong';
        input.form.requestSubmit();
        return true;
    })()""")
    await cdp.wait_for("location.pathname === '/login' && location.search.includes('error=1')"
                       " && document.readyState === 'complete'", "the login error redirect")
    error = await cdp.wait_for("""(() => {
        const e = document.getElementById('error');
        return e && !e.hidden && e.offsetParent !== null && e.textContent;
    })()""", "the invalid-key message")
    assert "invalid" in error.lower(), error

    # 3. The right key: on to /chat, where the model list fills in.
    await cdp.js(f"""(() => {{
        const input = document.querySelector('input[name=api_key]');
        input.value = {json.dumps(API_KEY)};
        input.form.requestSubmit();
        return true;
    }})()""")
    await cdp.wait_for("location.pathname === '/chat' && document.readyState === 'complete'",
                       "the redirect to /chat after signing in")
    assert "eldric_key" not in await cdp.js("document.cookie"), "the key cookie must be HttpOnly"
    models = await cdp.wait_for("""(() => {
        const s = document.getElementById('model');
        const ids = [...s.options].map((o) => o.value);
        return !s.disabled && ids.includes('eldric-mock') && ids;
    })()""", "the model select to list eldric-mock")
    assert await cdp.js("document.getElementById('model').value") == "eldric-mock", models

    units = await cdp.js(UNIT_CHECKS)
    assert units["sse"], "the SSE parser gives different events when its input is split"
    md = units["markdown"]
    assert md["unsafe"] == 0, md
    assert (md["strong"], md["em"], md["code"], md["items"]) == ("bold", "it", "code<b>", 2), md
    assert md["links"] == [["https://example.com/x", "noopener noreferrer", "ok"]], md
    assert md["block"] == "print('<script>') # hi" and md["copy"] and md["text"], md

    # 4. Type a prompt and click Send: the reply streams in, growing as it goes.
    await cdp.js(SAMPLER)
    await cdp.click("#prompt")
    await cdp.type("Tell me about foxes")
    await cdp.click("#send")
    await cdp.wait_for("!!document.getElementById('stop').offsetParent", "the Stop button while streaming")
    during = []
    for _ in range(8):
        during.append(await cdp.js("""(() => {
            const a = document.querySelectorAll('[data-role="assistant"] .msg-body');
            return a.length ? a[a.length - 1].textContent.length : -1;
        })()"""))
        await asyncio.sleep(0.03)
    await cdp.wait_for(STREAM_DONE % (1, json.dumps(MOCK_TEXT)), "the streamed reply to finish")
    final = await cdp.js("""document.querySelector('[data-role="assistant"] .msg-body').textContent""")
    assert final.startswith(MOCK_TEXT), final
    lengths = await cdp.js("window.__lengths")
    growth = sorted({n for n in lengths if 0 < n < len(final)})
    assert len(growth) >= 3, f"the reply did not arrive progressively: {lengths} (polled {during})"
    assert lengths == sorted(lengths), f"the reply shrank while streaming: {lengths}"
    assert await cdp.js("document.getElementById('prompt').value") == ""
    user = await cdp.js("""document.querySelector('[data-role="user"]').textContent""")
    assert user == "Tell me about foxes", user

    # 5. Shift+Enter adds a line, Enter sends.
    await cdp.click("#prompt")
    await cdp.type("And dogs?")
    await cdp.key("Enter", "Enter", 13, "\r", modifiers=8)  # 8: Shift
    await cdp.type("Briefly.")
    assert await cdp.js("document.getElementById('prompt').value") == "And dogs?\nBriefly."
    await cdp.key("Enter", "Enter", 13, "\r")
    await cdp.wait_for(STREAM_DONE % (2, json.dumps(MOCK_TEXT)), "the second reply to finish")
    users = await cdp.js("""[...document.querySelectorAll('[data-role="user"]')].map((e) => e.textContent)""")
    assert users == ["Tell me about foxes", "And dogs?\nBriefly."], users

    # 6. After a reload the conversation is listed and shown again.
    await cdp.send("Page.reload", {"ignoreCache": True})
    await cdp.wait_for("document.readyState === 'complete' && document.querySelectorAll('.conv-item').length === 1"
                       " && document.querySelectorAll('[data-role]').length === 4",
                       "the conversation to come back after a reload")
    item = await cdp.js("document.querySelector('.conv-item').textContent")
    assert "Tell me about foxes" in item, item
    roles = await cdp.js("[...document.querySelectorAll('[data-role]')].map((e) => e.dataset.role)")
    assert roles == ["user", "assistant", "user", "assistant"], roles
    assert MOCK_TEXT in await cdp.js("""document.querySelector('[data-role="assistant"]').textContent""")
    await cdp.wait_for("document.getElementById('model').value === 'eldric-mock'", "the model list again")
    await asyncio.sleep(0.3)  # let the layout settle for the picture

    png = tmp_path / "chat.png"
    await cdp.screenshot(png)
    browser.keep_png(png, SCREENSHOT_COPY)

    # 7. Phone width: the sidebar hides behind the menu button.
    await cdp.viewport(*PHONE, mobile=True)
    await cdp.wait_for("document.getElementById('sidebar').getBoundingClientRect().right <= 0",
                       "the sidebar to collapse at phone width")
    await cdp.click("#menu")
    await cdp.wait_for("document.getElementById('sidebar').getBoundingClientRect().left >= 0"
                       " && document.querySelector('.conv-item').getBoundingClientRect().width > 0",
                       "the sidebar to open from the menu button")
    await cdp.click_at(PHONE[0] - 15, PHONE[1] / 2)  # the dimmed page beside the sidebar
    await cdp.wait_for("document.getElementById('sidebar').getBoundingClientRect().right <= 0",
                       "the sidebar to close again")
    await asyncio.sleep(0.3)
    phone = tmp_path / "chat-phone.png"
    assert await cdp.screenshot(phone) > 5_000
    shutil.copyfile(phone, PHONE_SCREENSHOT_COPY)
    await cdp.viewport(*DESKTOP, mobile=False)

    # 8. New chat, then deleting the conversation empties the list (two clicks: arm, confirm).
    await cdp.click("#new-chat")
    await cdp.wait_for("document.querySelectorAll('[data-role]').length === 0", "an empty new chat")
    await cdp.click(".conv-item .conv-delete")
    await cdp.click(".conv-item .conv-delete")
    await cdp.wait_for("document.querySelectorAll('.conv-item').length === 0", "the conversation to be deleted")

    # 9. Signing out drops the cookie: /chat sends the browser to /login again.
    await cdp.js("document.querySelector('form[action=\"/logout\"]').requestSubmit(), true")
    await cdp.wait_for("location.pathname === '/login' && document.readyState === 'complete'",
                       "the sign-out redirect")
    await cdp.navigate(f"{base}/chat")
    await cdp.wait_for("location.pathname === '/login'", "the login page after signing out")

    assert not cdp.problems, "the page reported errors:\n" + "\n".join(cdp.problems)


# ---------------------------------------------------------------- an edge that needs no key

REAL_MODEL = "llama-real"
PER_IP_RPM = 30


@pytest.mark.timeout(TEST_TIMEOUT + 15)
async def test_keyless_chat_page_has_no_dead_ends(tmp_path, aiohttp_server):
    """The quick start's edge (no key needed), in front of an OpenAI-compatible upstream
    listing the mock and a real model: no sign-out, no login page, a 401 from upstream is
    an error (not a trip to a login no key can pass), a real model is preselected and the
    user's choice kept, and a 429 says when to try again."""
    from tests.conftest import url_of
    from tests.fakes import openai_server

    browser.need_chromium()
    fake = await aiohttp_server(openai_server.make_app())
    knobs = fake.app[openai_server.KNOBS]
    knobs.models = ["eldric-mock", REAL_MODEL]
    async with asyncio.timeout(TEST_TIMEOUT):
        async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                              bind="127.0.0.1", routers=url_of(fake),
                              require_api_key=False, per_ip_rpm=PER_IP_RPM) as e:
            base = e["edge"].rstrip("/")
            async with chromium(tmp_path) as cdp:
                await _drive_keyless(cdp, base, knobs)


async def _drive_keyless(cdp: CDP, base: str, knobs) -> None:  # type: ignore[no-untyped-def]
    await cdp.viewport(*DESKTOP, mobile=False)

    # 1. The upstream refuses (401): the page says so and stays; no sign-out to offer.
    knobs.api_key = "sk-upstream-only"
    await cdp.navigate(f"{base}/chat")
    notice = await cdp.wait_for("""(() => {
        const n = document.getElementById('notice');
        return !n.hidden && n.textContent;
    })()""", "the model-list error")
    assert "401" in notice and "sign-in" not in notice, notice
    await asyncio.sleep(2.5)  # past the delay after which a keyed page goes to /login
    assert await cdp.js("location.pathname") == "/chat"
    assert await cdp.js("document.getElementById('logout').offsetParent === null"), \
        "a sign-out button on an edge that needs no key"

    # 2. /login and signing out both lead back to the chat.
    await cdp.navigate(f"{base}/login")
    await cdp.wait_for("location.pathname === '/chat'", "/login to redirect to /chat")
    await cdp.js("document.querySelector('form[action=\"/logout\"]').requestSubmit(), true")
    await cdp.wait_for("location.pathname === '/chat' && document.readyState === 'complete'"
                       " && !!document.getElementById('model')", "the sign-out to land on /chat")

    # 3. The upstream answers: the real model is preselected, not the mock listed first.
    knobs.api_key = None
    await cdp.send("Page.reload", {"ignoreCache": True})
    pick = await cdp.wait_for("""(() => {
        const s = document.getElementById('model');
        return !s.disabled && s.options.length === 2 && s.value;
    })()""", "the model list")
    assert pick == REAL_MODEL

    # 4. The user's choice (the mock, on purpose) is kept across a reload.
    await cdp.js("""(() => {
        const s = document.getElementById('model');
        s.value = 'eldric-mock';
        s.dispatchEvent(new Event('change'));
        return true;
    })()""")
    await cdp.send("Page.reload", {"ignoreCache": True})
    pick = await cdp.wait_for("""(() => {
        const s = document.getElementById('model');
        return !s.disabled && s.options.length === 2 && s.value;
    })()""", "the model list after a reload")
    assert pick == "eldric-mock"

    # 5. Over the per-IP limit (the test shares the browser's 127.0.0.1): the reply
    #    says when to try again, as the edge's Retry-After does.
    retry_after = None
    async with aiohttp.ClientSession() as http:
        for _ in range(PER_IP_RPM + 1):
            async with http.get(f"{base}/v1/models") as r:
                if r.status == 429:
                    retry_after = int(r.headers["Retry-After"])
                    break
    assert retry_after is not None, "the edge never rate-limited"
    await cdp.click("#prompt")
    await cdp.type("hello")
    await cdp.click("#send")
    error = await cdp.wait_for("""(() => {
        const e = document.querySelector('[data-role="assistant"] .msg-error');
        return e && e.textContent;
    })()""", "the rate-limit error")
    m = re.search(r"try again in (\d+) s", error)
    assert error.startswith("Error 429") and m, error
    assert abs(int(m.group(1)) - retry_after) <= 2, (error, retry_after)
    assert await cdp.js("location.pathname") == "/chat"

    assert not cdp.problems, "the page reported errors:\n" + "\n".join(cdp.problems)
