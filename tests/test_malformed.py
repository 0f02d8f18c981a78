"""2,000 malformed requests at every role: parsers answer (4xx), never a 500, never a
traceback, and every process is still healthy afterwards."""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp

from tests.conftest import run_eldric

PATHS = {
    "worker": ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/anything"],
    "router": ["/v1/chat/completions", "/v1/embeddings", "/api/v1/config", "/v1/rerank"],
    "controller": ["/api/v1/workers/register", "/api/v1/workers/wrk-x/heartbeat",
                   "/api/v1/workers/discover", "/api/v1/router/config"],
    "edge": ["/v1/chat/completions", "/api/v1/clients/register", "/login", "/v1/models"],
    "cloud": ["/v1/chat/completions", "/v1/completions", "/api/v1/backends",
              "/api/v1/backends/local/test"],
}
CONTENT_TYPES = ["application/json", "text/plain", "multipart/form-data; boundary=zz",
                 "application/x-www-form-urlencoded", "application/octet-stream", None]


def bodies(rng: random.Random, n: int) -> list[bytes]:
    fixed = [
        b"", b"\xff\xfe\x00", b"{" * 5000 + b"}" * 5000, b"[" * 100_000,
        b'{"a": ' * 50_000,  # deeper than the decoder goes: was a 500 everywhere
        b'{"model": "eldric-mock", "messages": [' + b"[" * 100_000,
        b'{"model": "eldric-mock", "messages": [{"role": "user", "content": '
        + b'{"a": ' * 50_000 + b"}]}",
        b'{"model": 1e999999, "messages": []}', b'{"model": 123456789012345678901234567890}',
        b'{"model": "x", "messages": [1, 2, 3], "stream": 7}',
        b'{"model": "\xed\xa0\x80", "messages": []}', b'{"model": "\\ud800"}',
        json.dumps({"model": "x" * 100_000, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        b"null", b'"str"', b"true", b'{"model": null}', b'{"model": ["a"]}',
        b'{"model": "eldric-mock", "messages": [' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"]}",
        b'{"name": 5}', b'{"worker_type": "inference", "url": "http://x", "load": {"cpu_percent": "hot"}}',
        b'{"strategy": ["round_robin"]}', b'{"status": "healthy", "load": null}',
        b"api_key=%ff%fe", b"--zz\r\nContent-Disposition: form-data\r\n\r\n",
    ]
    out = list(fixed)
    while len(out) < n:
        out.append(rng.randbytes(rng.randint(1, 400)))
    return out[:n]


async def test_malformed_requests_never_500(tmp_path):
    rng = random.Random(20261122)
    high = dict(per_ip_rpm=10**9, per_key_rpm=10**9, global_rpm=10**9)
    slow = dict(body_timeout=300)  # slow-loris bodies are cut off quickly here
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1",
                          **slow) as c, \
            run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1", backend="mock",
                       **slow) as w:
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"], admin_key="a", **slow) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                           routers=w["worker"], api_key="k", admin_key="a", **high,
                           **slow) as e, \
                run_eldric("cloud", tmp_path / "cl", port=0, bind="127.0.0.1",
                           backends=f"local:{w['worker']}/v1", admin_key="a", **slow) as cl:
            urls = {"controller": c["controller"], "worker": w["worker"], "router": r["router"],
                    "edge": e["edge"], "cloud": cl["cloud"]}
            bad: list[tuple] = []
            sent = 0
            t0 = time.monotonic()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s:
                per_path = 2000 // sum(len(p) for p in PATHS.values())
                for role, paths in PATHS.items():
                    auth = {"Authorization": "Bearer k" if role == "edge" else "Bearer a"}
                    for path in paths:
                        for body in bodies(rng, per_path):
                            headers = dict(auth)
                            ct = rng.choice(CONTENT_TYPES)
                            if ct:
                                headers["Content-Type"] = ct
                            async with s.post(urls[role] + path, data=body, headers=headers) as resp:
                                text = await resp.text(errors="replace")
                            sent += 1
                            if resp.status >= 500 or "Traceback" in text:
                                bad.append((role, path, resp.status, body[:40], text[:120]))
                # Slow-loris bodies, at every role: cut off (408), not waited for forever.
                for role, url in urls.items():
                    path = PATHS[role][0]
                    host, port = url.removeprefix("http://").split(":")
                    reader, writer = await asyncio.open_connection(host, int(port))
                    writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                                 b"Content-Length: 1000\r\n\r\n{\"mod" % path.encode())
                    await writer.drain()
                    head = await asyncio.wait_for(reader.read(200), 5)
                    writer.close()
                    assert head.startswith(b"HTTP/1.1 408"), (role, head)
                for role, url in urls.items():  # every process still healthy
                    async with s.get(url + "/health") as resp:
                        assert resp.status == 200, role
                    async with s.get(url + "/metrics") as resp:
                        assert resp.status == 200, role
                    async with s.post(url + "/v1/chat/completions", json={
                            "model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}]},
                            headers={"Authorization": "Bearer k"}) as resp:
                        assert resp.status < 500 or role == "controller", role
    assert sent == 2000
    assert bad == [], bad[:5]
    assert time.monotonic() - t0 < 60
