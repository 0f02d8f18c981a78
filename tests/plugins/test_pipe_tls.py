"""A pipe calling the cluster through an HTTPS edge: edge_url names the edge on
loopback, which its certificate (made for the public name) does not cover, so
initialize also gives the edge's own certificate (never its key) and
plugin.edge_ssl() pins it. The shipped echo-upper uses it."""

from __future__ import annotations

import json
import ssl

import openai
import pytest

from tests.conftest import run_eldric
from tests.fakes import scripted
from tests.plugins.kit import plugins_dir, router

KEY = "sk-pipe-tls"
ASK = [{"role": "user", "content": "say hello"}]

PEEK = """
from eldric import plugin

@plugin.pipe(id="peek", name="what initialize gave")
def answer(body, user):
    import json, urllib.request
    strict = "refused"
    try:  # the ordinary check of the name: the certificate does not cover 127.0.0.1
        urllib.request.urlopen(plugin.edge_url + "/health", timeout=10)
        strict = "accepted"
    except Exception:
        pass
    return json.dumps({"key_sent": "PRIVATE KEY" in plugin.edge_cert,
                       "cert_sent": "BEGIN CERTIFICATE" in plugin.edge_cert,
                       "strict": strict})

plugin.run()
"""


async def test_a_pipe_calls_an_https_edge_whose_certificate_names_another_host(
        tmp_path, aiohttp_server):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("edge.example")  # the public name only, not 127.0.0.1
    pem = tmp_path / "edge.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))  # key and chain, one file
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(model="m-a", text="hello from the cluster")
    plugins = plugins_dir(tmp_path, "echo-upper", own={"peek": ({"type": "pipe"}, PEEK)})
    async with router(tmp_path, script.url) as r, \
            run_eldric("edge", tmp_path / "e", port=0, bind="127.0.0.1", cert=str(pem),
                       key=str(pem), routers=r["router"], api_key=KEY,
                       plugins_dir=str(plugins)) as e:
        assert e["edge"].startswith("https://")
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        ctx.check_hostname = False  # the test reaches it on loopback too
        http = openai.DefaultAsyncHttpxClient(verify=ctx)
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0,
                                    http_client=http)
        reply = await client.chat.completions.create(model="echo-upper", messages=ASK)
        assert reply.choices[0].message.content == "HELLO FROM THE CLUSTER"
        peek = json.loads((await client.chat.completions.create(
            model="peek", messages=ASK)).choices[0].message.content)
        await client.close()
    assert peek == {"key_sent": False, "cert_sent": True, "strict": "refused"}
