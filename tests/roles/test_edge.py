"""The edge in front of real eldric workers: keys, limits, proxies, TLS, farm mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time

import aiohttp
import openai
import pytest

from tests.conftest import free_port, redis_argv, run_eldric, start_redis, until

MSG = [{"role": "user", "content": "hi"}]
CHAT = {"model": "eldric-mock", "messages": MSG}


@contextlib.asynccontextmanager
async def cluster(tmp_path, *, routers=None, quickstart=False, **edge_flags):
    """A worker on the mock backend, and an edge (plain HTTP) in front of it
    (`quickstart`: the edge with its --role all settings under the flags)."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        flags = dict(no_tls=True, http_port=0, bind="127.0.0.1",
                     routers=routers or w["worker"])
        flags.update(edge_flags)
        async with run_eldric("edge", tmp_path / "e", quickstart=quickstart, **flags) as e:
            yield e["edge"], w["worker"]


async def _post(s, url, key=None, body=CHAT, headers=None):
    h = dict(headers or {})
    if key:
        h["Authorization"] = f"Bearer {key}"
    async with s.post(url + "/v1/chat/completions", json=body, headers=h) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_keys_no_bad_valid_and_sdk(tmp_path):
    async with cluster(tmp_path, api_key="sk-one") as (edge, _):
        async with aiohttp.ClientSession() as s:
            status, _, body = await _post(s, edge)
            assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
            status, _, body = await _post(s, edge, key="sk-wrong")
            assert status == 401 and "invalid API key" in json.loads(body)["error"]["message"]
            status, headers, _ = await _post(s, edge, headers={"X-API-Key": "sk-one"})
            assert status == 200 and "X-RateLimit-Remaining" in headers
        client = openai.AsyncOpenAI(base_url=edge + "/v1", api_key="sk-one")
        reply = await client.chat.completions.create(**CHAT)
        assert reply.choices[0].message.content.startswith("The quick brown fox")
        chunks = [c async for c in await client.chat.completions.create(**CHAT, stream=True)]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
            reply.choices[0].message.content
        assert [m.id async for m in client.models.list()] == ["eldric-mock"]
        await client.close()
        bad = openai.AsyncOpenAI(base_url=edge + "/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(**CHAT)
        await bad.close()


async def test_clients_admin_key_shown_once_and_revocation(tmp_path):
    async with cluster(tmp_path, admin_key="adm") as (edge, _):
        async with aiohttp.ClientSession() as s:
            url = edge + "/api/v1/clients"
            async with s.post(url + "/register", json={"name": "alice"}) as r:
                assert r.status == 401
            adm = {"Authorization": "Bearer adm"}
            async with s.post(url + "/register", json={"name": "alice", "rpm": 50,
                                                       "description": "team a"}, headers=adm) as r:
                assert r.status == 201
                created = await r.json()
            key = created["api_key"]
            assert key.startswith("sk-eldric-") and created["rpm"] == 50
            async with s.post(url + "/register", json={"name": "alice"}, headers=adm) as r:
                assert r.status == 409
            async with s.post(url + "/register", data=b"{", headers=adm) as r:
                assert r.status == 400
            async with s.get(url, headers=adm) as r:
                listing = await r.text()
            assert "alice" in listing and key not in listing and "key_hash" not in listing
            assert (await _post(s, edge, key=key))[0] == 200
            async with s.delete(url + "/alice", headers=adm) as r:
                assert r.status == 200
            assert (await _post(s, edge, key=key))[0] == 401  # at once
            async with s.delete(url + "/alice", headers=adm) as r:
                assert r.status == 404
    # The key is stored hashed, never in clear.
    db = next((tmp_path / "e" / "data").glob("edge-*.db")).read_bytes()
    assert key.encode() not in db


async def test_rate_limit_tiers_exact_and_not_double_counted(tmp_path):
    async with cluster(tmp_path, api_key="sk-one", admin_key="adm", per_ip_rpm=4,
                       per_key_rpm=100, global_rpm=100, rate_window="60s") as (edge, _):
        async with aiohttp.ClientSession() as s:
            results = [await _post(s, edge, key="sk-one") for _ in range(6)]
            assert [r[0] for r in results] == [200, 200, 200, 200, 429, 429]
            assert [r[1]["X-RateLimit-Remaining"] for r in results[:4]] == ["3", "2", "1", "0"]
            status, headers, body = results[4]
            err = json.loads(body)["error"]
            assert err["code"] == "rate_limit_ip" and "ip limit of 4" in err["message"]
            assert "per 1 min" in err["message"]  # the window in a unit people use
            assert 55 <= int(headers["Retry-After"]) <= 60
            async with s.get(edge + "/metrics") as r:
                text = await r.text()
    assert 'eldric_edge_rate_limited_total{tier="ip"} 2.0' in text
    assert 'eldric_edge_client_requests_total{client="key-1"} 4.0' in text


async def test_per_client_rpm_and_global_tier(tmp_path):
    async with cluster(tmp_path, admin_key="adm", per_ip_rpm=100, per_key_rpm=100,
                       global_rpm=5) as (edge, _):
        async with aiohttp.ClientSession() as s:
            adm = {"Authorization": "Bearer adm"}
            async with s.post(edge + "/api/v1/clients/register", json={"name": "slow", "rpm": 2},
                              headers=adm) as r:
                slow = (await r.json())["api_key"]
            async with s.post(edge + "/api/v1/clients/register", json={"name": "fast"},
                              headers=adm) as r:
                fast = (await r.json())["api_key"]
            got = [(await _post(s, edge, key=slow))[0] for _ in range(3)]
            assert got == [200, 200, 429]  # the client's own rpm replaces per_key_rpm
            # The refused request was not counted globally: 3 more fit under global 5.
            got = [(await _post(s, edge, key=fast))[0] for _ in range(4)]
            assert got == [200, 200, 200, 429]
            status, _, body = await _post(s, edge, key=fast)
            assert json.loads(body)["error"]["code"] == "rate_limit_global"


async def test_sliding_window_has_no_boundary_burst(tmp_path):
    """limit 4 per 1 s: 4 requests late in one second and 4 right after the boundary would
    pass a fixed window (8 in ~0.4 s); a sliding window refuses the second four."""
    async with cluster(tmp_path, api_key="k", per_ip_rpm=4, rate_window=1000) as (edge, _):
        async with aiohttp.ClientSession() as s:
            start = time.monotonic()
            boundary = int(time.time()) + 2.0  # a whole second from now
            await asyncio.sleep(boundary - 0.3 - time.time())  # at x.7 s
            first = [(await _post(s, edge, key="k"))[0] for _ in range(4)]
            # just past the boundary, however long the first four took (a slow machine)
            await asyncio.sleep(max(0.0, boundary + 0.1 - time.time()))
            second = [(await _post(s, edge, key="k"))[0] for _ in range(4)]
            assert first == [200] * 4 and second == [429] * 4
            await asyncio.sleep(0.75)  # now the first four have left the window
            assert (await _post(s, edge, key="k"))[0] == 200
            assert time.monotonic() - start < 5


async def test_metrics_have_no_created_series(tmp_path):
    """prometheus-client adds a `*_created` series beside every counter and histogram by
    default; eldric turns them off, for the bus's metrics and a role's own alike."""
    async with cluster(tmp_path, api_key="k") as (edge, worker):
        async with aiohttp.ClientSession() as s:
            await _post(s, edge, key="wrong")  # eldric_edge_auth_failures_total
            assert (await _post(s, edge, key="k"))[0] == 200
            texts = {}
            for url in (edge, worker):
                async with s.get(url + "/metrics") as r:
                    texts[url] = await r.text()
    assert "eldric_edge_auth_failures_total " in texts[edge]  # the edge's own counter
    for url, text in texts.items():
        assert "eldric_requests_total{" in text  # counters and histograms are there...
        assert "eldric_request_duration_seconds_count{" in text
        assert "_created" not in text, url  # ...without a _created twin


async def test_a_tier_at_zero_is_off(tmp_path):
    async with cluster(tmp_path, api_key="k", per_ip_rpm=0, per_key_rpm=0,
                       global_rpm=3, rate_window="500ms") as (edge, _):
        async with aiohttp.ClientSession() as s:
            results = [await _post(s, edge, key="k") for _ in range(4)]
    assert [r[0] for r in results] == [200, 200, 200, 429]
    assert [r[1]["X-RateLimit-Limit"] for r in results] == ["3"] * 4  # the global tier's
    err = json.loads(results[3][2])["error"]
    assert err["code"] == "rate_limit_global" and "per 500 ms" in err["message"]
    async with cluster(tmp_path, api_key="k", per_ip_rpm=0, per_key_rpm=0,
                       global_rpm=0) as (edge, _):
        async with aiohttp.ClientSession() as s:
            results = [await _post(s, edge, key="k") for _ in range(5)]
            async with s.get(edge + "/v1/models", headers={"X-API-Key": "k"}) as r:
                assert r.status == 200 and "X-RateLimit-Limit" not in r.headers
    assert [r[0] for r in results] == [200] * 5
    assert not any("X-RateLimit-Limit" in r[1] or "X-RateLimit-Remaining" in r[1]
                   for r in results)


async def test_quick_start_edge_has_no_limit_unless_asked(tmp_path):
    """The quick start's edge (--role all) is for the one person on loopback: the chat
    page's own calls must not run into 100 a minute. A flag still sets a limit."""
    async with cluster(tmp_path, quickstart=True) as (edge, _):
        async with aiohttp.ClientSession() as s:
            statuses = set()
            for _ in range(110):  # past the standalone default of 100 per IP
                async with s.get(edge + "/v1/models") as r:
                    statuses.add(r.status)
                    assert "X-RateLimit-Limit" not in r.headers
            assert statuses == {200}
    async with cluster(tmp_path, quickstart=True, per_ip_rpm=2) as (edge, _):
        async with aiohttp.ClientSession() as s:
            got = [(await _post(s, edge))[0] for _ in range(3)]
    assert got == [200, 200, 429]


async def test_forwarded_for_trusted_only_from_trusted_proxies(tmp_path):
    async with cluster(tmp_path, api_key="k", per_ip_rpm=2) as (edge, _):
        async with aiohttp.ClientSession() as s:
            spoof = [(await _post(s, edge, key="k",
                                  headers={"X-Forwarded-For": f"10.0.0.{i}"}))[0]
                     for i in range(4)]
        assert spoof == [200, 200, 429, 429]  # the header from an untrusted peer is ignored
    async with cluster(tmp_path, api_key="k", per_ip_rpm=2,
                       trusted_proxies="127.0.0.0/8") as (edge, _):
        async with aiohttp.ClientSession() as s:
            proxied = [(await _post(s, edge, key="k",
                                    headers={"X-Forwarded-For": f"203.0.113.{i}"}))[0]
                       for i in range(4)]
        assert proxied == [200] * 4  # each a different client behind the trusted proxy


async def test_bad_bodies_and_oversized(tmp_path):
    async with cluster(tmp_path, api_key="k", max_body_size=4096) as (edge, _):
        async with aiohttp.ClientSession() as s:
            h = {"Authorization": "Bearer k", "Content-Type": "application/json"}
            async with s.post(edge + "/v1/chat/completions", data=b'{"model": ', headers=h) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
                assert "X-RateLimit-Remaining" in r.headers
            async with s.post(edge + "/v1/chat/completions", headers=h,
                              json={**CHAT, "messages": [{"role": "user",
                                                          "content": "x" * 10000}]}) as r:
                assert r.status == 413


async def test_router_failover_and_all_down(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                              bind="127.0.0.1", routers=f"{dead},{w['worker']}",
                              api_key="k", health_interval=60000) as e:
            async with aiohttp.ClientSession() as s:
                for _ in range(4):
                    assert (await _post(s, e["edge"], key="k"))[0] == 200
                async with s.get(e["edge"] + "/api/v1/upstreams") as r:
                    states = {u["url"]: u["healthy"] for u in (await r.json())["routers"]}
                assert states == {dead: False, w["worker"]: True}
                async with s.get(e["edge"] + "/health") as r:
                    assert (await r.json())["status"] == "degraded"
    async with run_eldric("edge", tmp_path / "e2", no_tls=True, http_port=0, bind="127.0.0.1",
                          routers=dead, api_key="k") as e:
        async with aiohttp.ClientSession() as s:
            status, _, body = await _post(s, e["edge"], key="k")
    assert status == 503 and dead in json.loads(body)["error"]["message"]


async def test_cors_preflight_and_reply_headers(tmp_path):
    async with cluster(tmp_path, api_key="k", cors_origins="https://app.example") as (edge, _):
        async with aiohttp.ClientSession() as s:
            pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "authorization, content-type"}
            async with s.options(edge + "/v1/chat/completions", headers=pre) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            # what the Anthropic JS SDK sends from a browser, on its own path
            pre["Access-Control-Request-Headers"] = ("anthropic-version, anthropic-beta, "
                                                     "x-api-key, x-stainless-retry-count")
            async with s.options(edge + "/v1/messages", headers=pre) as r:
                assert r.status == 204
                allowed = {h.strip().lower()
                           for h in r.headers["Access-Control-Allow-Headers"].split(",")}
                assert {"anthropic-version", "anthropic-beta", "x-api-key",
                        "x-stainless-retry-count"} <= allowed
            status, headers, _ = await _post(s, edge, key="k",
                                             headers={"Origin": "https://app.example"})
            assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert headers["Access-Control-Allow-Credentials"] == "true"
            _, headers, _ = await _post(s, edge, key="k", headers={"Origin": "https://evil.example"})
            assert "Access-Control-Allow-Origin" not in headers
            # a streamed reply (its head goes out before the middleware sees it) and an
            # error reply carry them too, or the browser cannot read either
            for key, body, want in (("k", {**CHAT, "stream": True}, 200), ("wrong", CHAT, 401)):
                status, headers, _ = await _post(s, edge, key=key, body=body,
                                                 headers={"Origin": "https://app.example"})
                assert status == want
                assert headers["Access-Control-Allow-Origin"] == "https://app.example", want
                assert "X-RateLimit-Limit" in headers["Access-Control-Expose-Headers"]


async def test_tls_with_a_test_ca_and_the_openai_sdk(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "edge.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        async with run_eldric("edge", tmp_path / "e", port=0, bind="127.0.0.1",
                              cert=str(tmp_path / "edge.pem"), key=str(tmp_path / "edge.pem"),
                              routers=w["worker"], api_key="sk-tls") as e:
            assert e["edge"].startswith("https://")
            import ssl

            http = openai.DefaultAsyncHttpxClient(
                verify=ssl.create_default_context(cafile=str(tmp_path / "ca.pem")))
            client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-tls",
                                        http_client=http)
            reply = await client.chat.completions.create(**CHAT)
            assert reply.choices[0].message.content.startswith("The quick")
            # On the same TLS connection: a route off the fast lane (the connection goes
            # over to aiohttp mid-stream of TLS records), then chat and a stream again.
            assert [m.id async for m in client.models.list()] == ["eldric-mock"]
            again = await client.chat.completions.create(**CHAT)
            assert again.choices[0].message.content == reply.choices[0].message.content
            parts = [c.choices[0].delta.content or "" async for c in
                     await client.chat.completions.create(**CHAT, stream=True) if c.choices]
            assert "".join(parts) == reply.choices[0].message.content
            await client.close()
            untrusting = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-tls",
                                            max_retries=0)
            with pytest.raises(openai.APIConnectionError):
                await untrusting.chat.completions.create(**CHAT)  # unknown CA: refused
            await untrusting.close()


def test_tls_misconfiguration_refused_at_start(tmp_path):
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    def run(*args):
        return subprocess.run([sys.executable, "-m", "eldric", "--role", "edge", "--port", "0",
                               "--bind", "127.0.0.1", "--api-key", "k", "--data-dir",
                               str(tmp_path), *args], capture_output=True, text=True, timeout=20)

    def last(out):  # the error line (a "stopped" log line may come before it)
        return out.stderr.strip().splitlines()[-1]

    none = tmp_path / "none.pem"
    (tmp_path / "bad.pem").write_text("not a certificate")
    unreadable = tmp_path / "secret.pem"
    unreadable.write_text("x")
    unreadable.chmod(0)
    # the same names for files set in the config file (as examples/edge.json does)
    cfg = tmp_path / "edge.json"
    cfg.write_text(json.dumps({"tls": {"cert_file": str(tmp_path / "bad.pem"),
                                       "key_file": str(tmp_path / "tls" / "privkey.pem")}}))
    cases = [(), ("--cert", str(none), "--key", str(none)),
             ("--cert", str(tmp_path / "bad.pem"), "--key", str(none)),  # the key missing
             ("--cert", str(tmp_path), "--key", str(tmp_path / "bad.pem")),  # not a file
             ("--config", str(cfg)),
             ("--cert", str(tmp_path / "bad.pem"), "--key", str(tmp_path / "bad.pem")),
             ("--tls-mode", "acme")]
    readable_by_all = os.geteuid() == 0  # root reads any file
    if not readable_by_all:
        cases.append(("--cert", str(tmp_path / "bad.pem"), "--key", str(unreadable)))
    # Each a process refused at start, independent of the others (each is mostly its
    # interpreter's and eldric's imports): two at a time, the cores the suite is run on
    # (more would only stretch each one's wall time towards its timeout).
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda args: run(*args), cases))
    assert all(out.returncode == 2 for out in outs), [out.stderr for out in outs]
    bare, missing, key_missing, directory, in_file, bad, acme = outs[:7]
    assert "give --cert and --key" in bare.stderr
    assert last(missing) == f"eldric: edge: tls.cert_file (--cert) {none}: not found"
    assert last(key_missing) == f"eldric: edge: tls.key_file (--key) {none}: not found"
    assert last(directory).startswith(f"eldric: edge: tls.cert_file (--cert) {tmp_path}: ")
    if not readable_by_all:
        assert last(outs[7]).startswith(f"eldric: edge: tls.key_file (--key) {unreadable}: ")
    assert last(in_file) == (f"eldric: edge: tls.key_file (--key) "
                             f"{tmp_path / 'tls' / 'privkey.pem'}: not found")
    assert "cannot use certificate" in bad.stderr
    assert "not supported yet" in acme.stderr
    assert all("Traceback" not in out.stderr for out in outs)


@contextlib.asynccontextmanager
async def farm(tmp_path, redis_url, **limits):
    """Two edges sharing one real Redis, in front of one worker on the mock backend.
    The worker is checked once a minute: none of these tests waits for a check, and a
    check's deadline is its period, so the 100 ms these had took the only router out
    (edge /health 503, requests 503) whenever the worker's /health answered slower
    than that on a loaded host. Redis coming back is seen by the edge's own store check
    (every second while degraded), which the router period no longer sets."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        common = dict(no_tls=True, http_port=0, bind="127.0.0.1", routers=w["worker"],
                      mode="farm", redis_url=redis_url, health_interval=60_000, **limits)
        async with run_eldric("edge", tmp_path / "a", **common) as a, \
                run_eldric("edge", tmp_path / "b", **common) as b:
            yield a["edge"], b["edge"]


async def test_farm_two_edges_share_limits_and_keys(tmp_path, redis_url):
    async with farm(tmp_path, redis_url, admin_key="adm", per_ip_rpm=5, per_key_rpm=100,
                    global_rpm=100) as (ea, eb):
        async with aiohttp.ClientSession() as s:
            adm = {"Authorization": "Bearer adm"}
            async with s.post(ea + "/api/v1/clients/register", json={"name": "team"},
                              headers=adm) as r:
                key = (await r.json())["api_key"]
            # Created on A, honoured by B; the IP limit of 5 is one limit for both.
            got = [(await _post(s, ea if i % 2 else eb, key=key))[0] for i in range(7)]
            assert got == [200] * 5 + [429] * 2
            async with s.get(eb + "/api/v1/clients", headers=adm) as r:
                assert [c["name"] for c in (await r.json())["clients"]] == ["team"]
            async with s.delete(eb + "/api/v1/clients/team", headers=adm) as r:
                assert r.status == 200
            # Revoked on B: refused on A at once (before the rate limit is consulted).
            assert (await _post(s, ea, key=key))[0] == 401


async def test_farm_limit_exact_under_concurrency(tmp_path, redis_url):
    async with farm(tmp_path, redis_url, api_key="k", per_ip_rpm=1000, per_key_rpm=1000,
                    global_rpm=20) as (ea, eb):
        async with aiohttp.ClientSession() as s:
            results = await asyncio.gather(*(
                _post(s, ea if i % 2 else eb, key="k") for i in range(40)))
    assert [r[0] for r in results].count(200) == 20  # exactly the global limit, across both


def test_keys_never_logged(eldric_proc, tmp_path):
    import urllib.error
    import urllib.request

    port = free_port()
    proc = eldric_proc("--role", "edge", "--no-tls", "--http-port", str(port), "--bind",
                       "127.0.0.1", "--api-key", "sk-secret-static", "--admin-key",
                       "adm-secret", "--data-dir", str(tmp_path), "--log-format", "json",
                       "--routers", f"http://127.0.0.1:{free_port()}")
    proc.wait_http(f"http://127.0.0.1:{port}/metrics")  # /health is 503: its router is down
    base = f"http://127.0.0.1:{port}"
    req = urllib.request.Request(base + "/api/v1/clients/register",
                                 data=b'{"name": "bob"}', headers={"X-API-Key": "adm-secret"})
    created = json.loads(urllib.request.urlopen(req).read())["api_key"]
    for key in ("sk-secret-static", created, "sk-wrong-guess"):
        req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(CHAT).encode(),
                                     headers={"Authorization": f"Bearer {key}"})
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(req).read()
    out = proc.stop()
    assert '"path":"/v1/chat/completions"' in out  # the requests were logged...
    for secret in ("sk-secret-static", "adm-secret", created, "sk-wrong-guess"):
        assert secret not in out  # ...their keys never


async def test_login_cookie_and_cross_site_posts(tmp_path):
    async with cluster(tmp_path, api_key="sk-page") as (edge, _):
        # unsafe=True: keep cookies from an IP-address host, as browsers do.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(edge + "/chat", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login"
            async with s.post(edge + "/login", data={"api_key": "sk-page"},
                              headers={"Origin": "https://evil.example"},
                              allow_redirects=False) as r:
                assert r.status == 403  # login CSRF refused
            async with s.post(edge + "/login", data=b"--zz\r\n",  # a broken form: 400, not 500
                              headers={"Content-Type": "multipart/form-data; boundary=zz"},
                              allow_redirects=False) as r:
                assert r.status == 400
            async with s.post(edge + "/login", data={"api_key": "wrong"},
                              allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login?error=1"
            async with s.post(edge + "/login", data={"api_key": "sk-page"},
                              headers={"Origin": edge}, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/chat"
                cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert "Secure" not in cookie  # plain HTTP here; set on TLS
            async with s.get(edge + "/chat", allow_redirects=False) as r:
                assert r.status == 200
                assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            # The cookie authenticates the page's API calls.
            async with s.get(edge + "/v1/models") as r:
                assert r.status == 200


async def test_farm_survives_redis_going_away(tmp_path):
    """Redis stopped under a farm edge: static keys and per-edge limits keep it serving
    (and limiting), created keys cannot be verified (refused), /health says degraded;
    Redis back: created keys and the shared limits resume."""
    import signal

    port = free_port()
    # With persistence, as README says to run it: keys and windows survive the restart.
    argv = redis_argv(tmp_path, port, persist=True)
    redis_proc = start_redis(argv, port)
    try:
        async with farm(tmp_path, f"redis://127.0.0.1:{port}/0", api_key="k-static",
                        admin_key="adm", per_ip_rpm=1000, per_key_rpm=3,
                        global_rpm=1000) as (ea, eb):
            async with aiohttp.ClientSession() as s:
                async with s.post(ea + "/api/v1/clients/register", json={"name": "c"},
                                  headers={"Authorization": "Bearer adm"}) as r:
                    created = (await r.json())["api_key"]
                assert (await _post(s, ea, key=created))[0] == 200  # 1 of its 3, in Redis
                redis_proc.send_signal(signal.SIGKILL)
                redis_proc.wait(5)
                assert (await _post(s, ea, key="k-static"))[0] == 200  # keeps serving
                assert (await _post(s, ea, key=created))[0] == 401  # cannot be verified
                # ... and keeps limiting, on this edge's own window: 3 a minute per key
                assert [(await _post(s, ea, key="k-static"))[0] for _ in range(3)] == [
                    200, 200, 429]
                async with s.post(ea + "/api/v1/clients/register", json={"name": "d"},
                                  headers={"Authorization": "Bearer adm"}) as r:
                    assert r.status == 503  # the admin API needs the store: a clean 503
                    assert (await r.json())["error"]["code"] == "store_unavailable"
                for key, where in (("k-static", "/chat"), (created, "/login?error=1")):
                    async with s.post(ea + "/login", data={"api_key": key},
                                      allow_redirects=False) as r:  # the page, not a 500
                        assert r.status == 303 and r.headers["Location"] == where
                async with s.get(ea + "/health") as r:
                    health = await r.json()
                assert r.status == 200 and health["status"] == "degraded"
                assert health["shared_store"].startswith("unreachable")
                redis_proc = start_redis(argv, port)
                for edge in (ea, eb):
                    # each edge's health loop notices it is back: Redis reloading its
                    # file and the loop's next turn take seconds on a busy host
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline:
                        async with s.get(edge + "/health") as r:
                            if (await r.json())["shared_store"] == "ok":
                                break
                        await asyncio.sleep(0.1)
                    async with s.get(edge + "/health") as r:
                        assert (await r.json())["shared_store"] == "ok"
                # shared keys resume, and so does the shared window: the request made
                # before the outage still counts, across both edges
                assert (await _post(s, ea, key=created))[0] == 200
                assert (await _post(s, eb, key=created))[0] == 200
                assert (await _post(s, ea, key=created))[0] == 429
    finally:
        redis_proc.kill()
        redis_proc.wait(5)


async def test_router_errors_and_not_here_relayed_with_their_headers(tmp_path, aiohttp_server):
    """A 404 or a 501 from behind the router reaches the client as it was sent, with the
    router's X-Eldric-* headers; a 501 from one router is not retried on the next (every
    router would say the same) and is not a 503."""
    from tests.fakes import worker as fake_worker
    from tests.fakes.worker import KNOBS

    AUTH = {"Authorization": "Bearer k"}

    server = await aiohttp_server(fake_worker.make_app("a", ["m1"]))
    knobs = server.app[KNOBS]
    knobs.not_here = {"/v1/embeddings"}
    url = str(server.make_url("")).rstrip("/")
    async with run_eldric("router", tmp_path / "r1", port=0, bind="127.0.0.1",
                          workers=url) as r1, \
            run_eldric("router", tmp_path / "r2", port=0, bind="127.0.0.1",
                       workers=url) as r2:
        routers = f"{r1['router']},{r2['router']}"
        async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                              bind="127.0.0.1", routers=routers, api_key="k") as e:
            async with aiohttp.ClientSession() as s:
                async with s.post(e["edge"] + "/v1/embeddings", headers=AUTH,
                                  json={"model": "m1", "input": "x"}) as r:
                    assert r.status == 501 and r.headers["X-Eldric-Worker"] == url
                    assert r.headers["X-Should-Retry"] == "false"
                    assert (await r.json())["error"]["type"] == "not_supported_error"
                status, headers, body = await _post(s, e["edge"], key="k",
                                                    body={"model": "nope", "messages": MSG})
                assert status == 404 and json.loads(body)["error"]["code"] == "model_not_found"
                assert headers["X-Eldric-Model"] == "nope" and "X-RateLimit-Limit" in headers
    assert knobs.seen.count("/v1/embeddings") == 1


async def test_a_router_that_times_out_is_checked_at_once(tmp_path, aiohttp_server):
    """A timeout may be the request's fault, so it does not take a router out by itself:
    the edge checks that router at once, and its failing /health does."""
    from aiohttp import web

    wedged = {"on": False}

    async def health(request):  # type: ignore[no-untyped-def]
        return web.json_response({"status": "unhealthy"} if wedged["on"] else {},
                                 status=503 if wedged["on"] else 200)

    async def chat(request):  # type: ignore[no-untyped-def]
        await asyncio.sleep(30)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat)
    slow = await aiohttp_server(app)
    slow_url = str(slow.make_url("")).rstrip("/")
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                              bind="127.0.0.1", routers=f"{slow_url},{w['worker']}",
                              health_interval=60000, first_byte_timeout=300,
                              api_key="k") as e:
            async with aiohttp.ClientSession() as s:
                async def slow_state():
                    async with s.get(e["edge"] + "/api/v1/upstreams") as r:
                        return {u["url"]: u for u in (await r.json())["routers"]}[slow_url]

                assert (await slow_state())["healthy"] is True
                wedged["on"] = True
                for _ in range(2):  # one of them goes to the slow router first
                    status, _, _ = await _post(s, e["edge"], key="k")
                    assert status == 200  # failed over to the good one

                async def out() -> bool:
                    return (await slow_state())["healthy"] is False

                await until(out, timeout=3)
