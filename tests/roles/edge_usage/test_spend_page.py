"""The edge's spend page (/dashboard), driven in the system Chromium through the DevTools
protocol against a real edge, router and worker (the mock backend, which states its
usage) with real traffic: the admin sign-in (a wrong key refused), the chart drawn with
the numbers the clients' own replies stated (tokens, and spend by a configured price),
the totals and the models table, a budget edited from the page and enforced on the
client's next request, a client revoked from the page (its key refused at once), a client
created from the page (the key it shows works), and sign-out. The page logs nothing to
the console and breaks no CSP rule. An unpriced model: named, and drawn in tokens, on a
phone's width. Screenshots: /tmp/eldric-spend.png, /tmp/eldric-spend-phone.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time

import aiohttp
import pytest

from tests import browser
from tests.browser import CDP, chromium
from tests.conftest import run_eldric, until

ADMIN = "adm-spend-page"
HDR = {"Authorization": f"Bearer {ADMIN}"}
MODEL = "eldric-mock"
PRICE = {"input": 1000.0, "output": 2000.0}  # $ per million tokens: visible sums
TEST_TIMEOUT = 120  # seconds, the whole test
SCREENSHOT_COPY = "/tmp/eldric-spend.png"
PHONE_SCREENSHOT_COPY = "/tmp/eldric-spend-phone.png"
PHONE = (390, 844)


def cost(usage: dict) -> float:
    return (usage["prompt_tokens"] * PRICE["input"]
            + usage["completion_tokens"] * PRICE["output"]) / 1e6


async def register(s: aiohttp.ClientSession, edge: str, name: str) -> str:
    async with s.post(f"{edge}/api/v1/clients/register", json={"name": name},
                      headers=HDR) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["api_key"]


async def ask(s: aiohttp.ClientSession, edge: str, key: str, max_tokens: int = 8,
              stream: bool = False) -> tuple[int, dict]:
    """One chat completion: its status, and its usage (or the error) as the client saw it."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": max_tokens}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with s.post(f"{edge}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status != 200 or not stream:
            got = await r.json()
            return r.status, got.get("usage") or got.get("error")
        usage = None
        async for line in r.content:
            if line.startswith(b"data: {") and b'"usage":{' in line:
                usage = json.loads(line[6:])["usage"]
        return r.status, usage


@contextlib.asynccontextmanager
async def cluster(tmp_path, **edge_flags):
    """worker (mock) <- router <- edge with the admin key: the edge's URL."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=100) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], health_interval=100, admin_key=ADMIN,
                       global_rpm=0, per_ip_rpm=0, per_key_rpm=0, usage_flush_interval=200,
                       **edge_flags) as e:
        yield e["edge"].rstrip("/")


async def sign_in(cdp: CDP, edge: str) -> None:
    await cdp.navigate(f"{edge}/dashboard")
    await cdp.wait_for("location.pathname === '/dashboard/login'", "the sign-in")
    await cdp.click("#admin_key")
    await cdp.type(ADMIN)
    await cdp.click("#login-submit")
    await cdp.wait_for("location.pathname === '/dashboard'", "the dashboard")


@pytest.mark.timeout(TEST_TIMEOUT + 30)
async def test_spend_page_shows_real_usage_and_edits_budgets(tmp_path):
    browser.need_chromium()
    started = time.monotonic()
    async with asyncio.timeout(TEST_TIMEOUT):
        async with cluster(tmp_path, usage_prices=json.dumps({MODEL: PRICE})) as edge, \
                aiohttp.ClientSession() as s:
            keys = {name: await register(s, edge, name) for name in ("alice", "bob")}
            async with chromium(tmp_path) as cdp:
                await _drive(cdp, s, edge, keys, tmp_path)
    print(f"spend page screenshot: {SCREENSHOT_COPY} ({time.monotonic() - started:.1f}s)")


@pytest.mark.timeout(TEST_TIMEOUT + 30)
async def test_unpriced_usage_is_shown_as_tokens_and_named(tmp_path):
    """No price for the model: the spend chart says nothing priced was used (not a flat
    zero), the model is listed as unpriced, and the tokens chart draws what was used."""
    browser.need_chromium()
    async with asyncio.timeout(TEST_TIMEOUT):
        async with cluster(tmp_path) as edge, aiohttp.ClientSession() as s:
            key = await register(s, edge, "dora")
            status, usage = await ask(s, edge, key, 6)
            assert status == 200
            await until(lambda: _counted(s, edge, 1), timeout=10)
            async with chromium(tmp_path) as cdp:
                await cdp.viewport(*PHONE, mobile=True)
                await sign_in(cdp, edge)
                await cdp.wait_for("document.getElementById('chart-empty').textContent"
                                   ".startsWith('Nothing priced was used')", "the note")
                assert await cdp.js("document.getElementById('sum-unpriced').textContent") == "1"
                assert await cdp.js("document.getElementById('unpriced-names').textContent") == MODEL
                assert await cdp.js("document.querySelector('#models-body tr').cells[5]"
                                    ".textContent") == "unpriced"
                assert await cdp.js("[document.getElementById('sum-cost').textContent, "
                                    "document.getElementById('sum-cost-sub').textContent]") == \
                    ["—", "no priced model used"]
                await cdp.js(_select("metric", "tokens"))
                await cdp.wait_for("document.querySelectorAll('#chart rect.seg').length === 1",
                                   "the tokens chart")
                assert json.loads(await cdp.js(CHART)) == {
                    "dora": usage["prompt_tokens"] + usage["completion_tokens"]}
                # the phone's width: the page fits it, tables scroll inside their panels
                assert await cdp.js("document.documentElement.scrollWidth <= innerWidth")
                await cdp.screenshot(tmp_path / "phone.png")
                browser.keep_png(tmp_path / "phone.png", PHONE_SCREENSHOT_COPY)
                assert not cdp.problems, cdp.problems


async def _counted(s: aiohttp.ClientSession, edge: str, n: int) -> bool:
    async with s.get(f"{edge}/api/v1/usage?group_by=client", headers=HDR) as r:
        return r.status == 200 and (await r.json())["totals"]["requests"] == n


CHART = """(() => {
    const out = {};
    for (const r of document.querySelectorAll('#chart rect.seg')) {
        out[r.dataset.series] = (out[r.dataset.series] || 0) + Number(r.dataset.value);
    }
    return JSON.stringify(out);
})()"""


# The chart's pure helpers, checked in the browser that runs them: eight series fold into
# the five largest and "other" (summed per day too), a "nice" axis top and its grid steps
# (whole numbers stay whole), UTC days across a month's end.
UNIT_CHECKS = """(() => {
    const C = EldricSpendChart;
    const rows = [];
    for (let i = 0; i < 8; i++) rows.push({day: "2026-12-01", client: "c" + i, v: 10 * (i + 1)});
    rows.push({day: "2026-12-02", client: "c0", v: 20});
    const s = C.series(rows, "client", (r) => r.v);
    return JSON.stringify({
        series: s.map((x) => [x.name, x.total]),
        other_day: s[s.length - 1].values["2026-12-01"],
        nice: [0, 1, 1.5, 3, 7, 102, 0.004].map(C.niceTop),
        steps: [[10, true], [1, true], [2, true], [20, true], [50, true], [10, false]]
            .map(([top, whole]) => C.steps(top, whole)),
        days: C.days(new Date("2026-11-30T10:00:00Z"), new Date("2026-12-02T23:00:00Z")),
    });
})()"""


def _select(select_id: str, value: str) -> str:
    return (f"(() => {{ const el = document.getElementById({json.dumps(select_id)}); "
            f"el.value = {json.dumps(value)}; el.dispatchEvent(new Event('change')); "
            "return true; })()")


async def _traffic(s: aiohttp.ClientSession, edge: str,
                   keys: dict[str, str]) -> dict[str, list[dict]]:
    """Six requests, streamed and whole: each one's usage as its client saw it."""
    used: dict[str, list[dict]] = {"alice": [], "bob": []}
    for i, (name, n) in enumerate([("alice", 4), ("alice", 9), ("bob", 3),
                                   ("alice", 12), ("bob", 7), ("alice", 5)]):
        status, usage = await ask(s, edge, keys[name], n, stream=i % 2 == 1)
        assert status == 200 and usage["completion_tokens"] == n, usage
        used[name].append(usage)
    await until(lambda: _counted(s, edge, 6), timeout=10)
    return used


async def _drive(cdp: CDP, s: aiohttp.ClientSession, edge: str, keys: dict[str, str],
                 tmp_path) -> None:
    await cdp.viewport(1280, 1000, mobile=False)

    # 1. No cookie: the sign-in. A wrong key is refused and said so; the right one opens it.
    await cdp.navigate(f"{edge}/dashboard")
    await cdp.wait_for("location.pathname === '/dashboard/login'", "the sign-in")
    await cdp.click("#admin_key")
    await cdp.type("wrong-key")
    await cdp.click("#login-submit")
    await cdp.wait_for("location.search === '?error=1' && !document.getElementById('error').hidden",
                       "the wrong key's error")
    await sign_in(cdp, edge)

    # 2. Nothing used yet: the page says so, and lists the clients without limits.
    await cdp.wait_for("document.getElementById('chart-empty').textContent"
                       ".startsWith('No usage in this period')", "the empty chart's note")
    assert await cdp.js("document.getElementById('chart').hidden")
    await cdp.wait_for("[...document.querySelectorAll('#clients-body tr')]"
                       ".map(t => t.dataset.key).join() === 'alice,bob'", "the clients")
    assert json.loads(await cdp.js(UNIT_CHECKS)) == {
        "series": [["c7", 80], ["c6", 70], ["c5", 60], ["c4", 50], ["c3", 40],
                   ["other", 80]],
        "other_day": 60, "nice": [1, 1, 2, 5, 10, 200, 0.005], "steps": [5, 1, 2, 4, 5, 4],
        "days": ["2026-11-30", "2026-12-01", "2026-12-02"]}

    # 3. Traffic: the page, refreshing on its own, draws it: spend per client per day,
    # as the replies stated it (today's bar).
    used = await _traffic(s, edge, keys)
    tokens = {n: sum(u["prompt_tokens"] + u["completion_tokens"] for u in us)
              for n, us in used.items()}
    spend = {n: sum(cost(u) for u in us) for n, us in used.items()}
    await cdp.wait_for("document.querySelectorAll('#chart rect.seg').length >= 2", "the chart")
    drawn = json.loads(await cdp.js(CHART))
    assert set(drawn) == {"alice", "bob"}
    for name in drawn:
        assert math.isclose(drawn[name], spend[name], rel_tol=1e-9), (drawn, spend)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert await cdp.js("[...new Set([...document.querySelectorAll('#chart rect.seg')]"
                        ".map(r => r.dataset.day))].join()") == today
    assert await cdp.js("document.getElementById('sum-requests').textContent") == "6"
    assert await cdp.js("document.getElementById('sum-cost').textContent") == \
        f"${sum(spend.values()):.2f}"
    assert await cdp.js("document.getElementById('sum-cost-sub').textContent") == \
        "all models priced"
    assert await cdp.js("document.getElementById('sum-tokens').textContent") == \
        f"{sum(tokens.values()):,}"
    assert await cdp.js("document.querySelector('#models-body tr[data-key=\"eldric-mock\"]')"
                        "?.cells[1].textContent") == "6"
    # tokens instead of spend: the same chart, redrawn from the same rows
    await cdp.js(_select("metric", "tokens"))
    await cdp.wait_for("document.getElementById('chart-title').textContent"
                       ".startsWith('Tokens')", "the tokens chart")
    assert json.loads(await cdp.js(CHART)) == tokens
    # by model: one series
    await cdp.js(_select("split", "model"))
    await cdp.wait_for(f"{CHART}.includes({json.dumps(MODEL)})", "the chart by model")
    assert json.loads(await cdp.js(CHART)) == {MODEL: sum(tokens.values())}
    top = await cdp.js("[...document.querySelectorAll('#top-body tr')].map(t => t.dataset.key).join()")
    assert top == ",".join(sorted(spend, key=spend.get, reverse=True))

    # 4. A budget edited from the page: alice's tokens per day set to 1, less than one
    # request uses, so by her next but one she is refused; the row shows the limit, and
    # its bar is full exactly when what she used reaches it.
    await cdp.click('#clients-body button[data-action="edit"][data-name="alice"]')
    await cdp.wait_for("!document.getElementById('client-form').hidden", "the edit form")
    assert await cdp.js("document.getElementById('f-name').disabled")
    await cdp.click("#f-max_tokens_per_day")
    await cdp.type("1")
    await cdp.click("#f-allowed_models")
    await cdp.type("eldric-*, gpt-4o*")
    await cdp.click("#form-save")
    await cdp.wait_for("document.getElementById('client-form').hidden", "the form to close")
    async with s.get(f"{edge}/api/v1/clients", headers=HDR) as r:
        alice = next(c for c in (await r.json())["clients"] if c["name"] == "alice")
    assert (alice["max_tokens_per_day"], alice["allowed_models"], alice["scopes"],
            alice["tpm"], alice["rpm"]) == (1, ["eldric-*", "gpt-4o*"], ["inference"], None, None)
    # (a budget counts from when it is set, and a request passes while some is left: so
    # the first may pass, its tokens spend the budget, the second is refused)
    replies = [await ask(s, edge, keys["alice"]) for _ in range(2)]
    status, err = replies[-1]
    assert status == 429 and err["code"] == "budget_exceeded", replies
    cell = "document.querySelector('#clients-body tr[data-key=\"alice\"] td[data-budget=\"tokens_today\"]')"
    await cdp.wait_for(f"{cell}?.dataset.limit === '1'", "the new limit")
    assert await cdp.js(f"(Number({cell}.dataset.used) >= 1) === "
                        f"{cell}.querySelector('.bar').classList.contains('bad')")
    assert (await ask(s, edge, keys["bob"]))[0] == 200  # bob has no budget

    # 5. bob revoked from the page (a second click confirms): his key stops at once.
    revoke = '#clients-body button[data-action="revoke"][data-name="bob"]'
    await cdp.click(revoke)
    await cdp.wait_for(f"document.querySelector('{revoke}').dataset.armed === '1'", "the confirm")
    assert (await ask(s, edge, keys["bob"]))[0] == 200  # one click revokes nothing
    await cdp.click(revoke)
    await cdp.wait_for("!document.querySelector('#clients-body tr[data-key=\"bob\"]')",
                       "bob's row to go")
    assert (await ask(s, edge, keys["bob"]))[0] == 401

    # 6. A client created from the page: the key it shows once works.
    await cdp.click("#new-client")
    await cdp.click("#f-name")
    await cdp.type("carol")
    await cdp.click("#f-tpm")
    await cdp.type("5000")
    await cdp.click('#f-scopes input[value="register"]')  # inference is ticked already
    await cdp.click("#form-save")
    await cdp.wait_for("!document.getElementById('new-key').hidden", "the new key")
    key = await cdp.js("document.getElementById('new-key-value').textContent")
    assert key.startswith("sk-eldric-") and (await ask(s, edge, key))[0] == 200
    await cdp.wait_for("document.querySelector('#clients-body tr[data-key=\"carol\"]')"
                       "?.cells[3].textContent === '5,000'", "carol's row with her tpm")
    async with s.get(f"{edge}/api/v1/clients", headers=HDR) as r:
        carol = next(c for c in (await r.json())["clients"] if c["name"] == "carol")
    assert carol["scopes"] == ["inference", "register"] and carol["tpm"] == 5000
    assert carol["max_tokens_per_day"] is None and carol["allowed_models"] is None

    # a refusal is the API's word, in the form: a name taken
    await cdp.click("#new-client")
    await cdp.click("#f-name")
    await cdp.type("alice")
    await cdp.click("#form-save")
    await cdp.wait_for("!document.getElementById('form-error').hidden", "the form's error")
    assert "exists" in await cdp.js("document.getElementById('form-error').textContent")
    await cdp.click("#form-cancel")

    await cdp.js(_select("split", "client"))
    await cdp.wait_for(f"{CHART}.includes('carol')", "carol in the chart")
    assert (await cdp.js("document.getElementById('version').textContent")).startswith("v")
    await cdp.js("window.scrollTo(0, 0); true")
    size = await cdp.screenshot(tmp_path / "spend.png")
    browser.keep_png(tmp_path / "spend.png", SCREENSHOT_COPY)
    assert size > 10_000
    assert not cdp.problems, cdp.problems

    # 7. The cookie gone (expired, or the admin key changed): the next refresh is the
    # sign-in's
    await cdp.send("Network.clearBrowserCookies")
    await cdp.wait_for("location.pathname === '/dashboard/login'", "the sign-in after a 401")
    await sign_in(cdp, edge)
    await cdp.wait_for("document.querySelectorAll('#chart rect.seg').length > 0", "back in")

    # 8. Sign out: back to the sign-in, and the admin API no longer answers the browser.
    await cdp.click("#signout")
    await cdp.wait_for("location.pathname === '/dashboard/login'", "the sign-in again")
    assert await cdp.js("fetch('/api/v1/clients').then(r => r.status)") == 401
    assert not cdp.problems, cdp.problems


@pytest.mark.timeout(TEST_TIMEOUT + 30)
async def test_with_usage_off_the_page_says_so_and_keeps_the_clients(tmp_path):
    """--usage off: the usage API is a 404 usage_off; the page says counting is off
    (not "unreachable"), shows no numbers, and still manages the clients."""
    browser.need_chromium()
    async with asyncio.timeout(TEST_TIMEOUT):
        async with cluster(tmp_path, usage="off") as edge, aiohttp.ClientSession() as s:
            key = await register(s, edge, "erin")
            assert (await ask(s, edge, key))[0] == 200
            async with chromium(tmp_path) as cdp:
                await sign_in(cdp, edge)
                await cdp.wait_for("!document.getElementById('usage-off').hidden", "the note")
                assert await cdp.js("document.getElementById('usage-parts').offsetParent === null"
                                    " && document.getElementById('notice').hidden")
                await cdp.wait_for("!!document.querySelector('#clients-body tr[data-key=\"erin\"]')",
                                   "the clients")
                revoke = '#clients-body button[data-action="revoke"][data-name="erin"]'
                await cdp.click(revoke)
                await cdp.click(revoke)
                await cdp.wait_for("!document.querySelector('#clients-body tr')", "erin gone")
                assert (await ask(s, edge, key))[0] == 401
                assert not cdp.problems, cdp.problems
