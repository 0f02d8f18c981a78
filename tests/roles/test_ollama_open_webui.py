"""What Open WebUI's Ollama connection asks of its URL (open_webui 0.12.4,
routers/ollama.py, utils/payload.py, utils/response.py, utils/models.py; see
research/formats.md 3.6), asked of the edge as Open WebUI asks it, and the replies read
the way Open WebUI reads them: aiohttp's r.json() (which insists on application/json),
one JSON object per line of a chat stream."""

from __future__ import annotations

import json
import re
from datetime import datetime

import aiohttp

from eldric.mock.server import MODEL
from tests.roles.ollama_hops import KEY, hops

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
# convert_payload_openai_to_ollama of a chat with a system prompt, an image, a tool call
# and its result, sampling parameters and a JSON schema (response_format)
CHAT = {
    "model": MODEL, "stream": True,
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is this, and the weather?", "images": [PNG]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"index": 0, "id": "call_1",
             "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ],
    "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}],
    "options": {"temperature": 0.7, "num_predict": 64, "stop": ["<|end|>"], "num_ctx": 2048},
    "keep_alive": "5m", "format": {"type": "object", "properties": {}},
    "metadata": {"chat_id": "c1"},
}


async def test_open_webuis_ollama_connection_on_the_edge(tmp_path):
    async with hops(tmp_path, backend="mock", mock_tokens=8) as urls, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        url = urls["edge"]
        async with s.get(url + "/api/version") as r:  # verify connection; the lowest version
            version = (await r.json())["version"]
            assert tuple(map(int, re.sub(r"^v|-.*", "", version).split(".")))
        async with s.get(url + "/api/tags") as r:  # get_all_models, fetch_ollama_models
            models = [{"id": m["model"], "name": m["name"], "ollama": m}
                      for m in (await r.json())["models"]]
            assert [m["id"] for m in models] == [MODEL]
        async with s.get(url + "/api/ps") as r:  # expires_at copied by model, if any
            for m in (await r.json())["models"]:
                datetime.fromisoformat(m["expires_at"])
        async with s.post(url + "/api/chat", json=CHAT) as r:
            assert r.status == 200 and r.content_type == "application/x-ndjson"
            body = await r.read()
        assert body.endswith(b"\n") and b"\n\n" not in body
        lines = [json.loads(line) for line in body.splitlines()]
        content, done = "", None
        for data in lines:  # convert_streaming_response_ollama_to_openai
            message = data.get("message") or {}
            content += message.get("content", None) or ""
            if data.get("done", False):
                done = data
        assert content == "The quick brown fox jumps over the lazy"
        assert done is lines[-1] and done["done_reason"] == "stop"
        assert done["prompt_eval_count"] > 0 and done["eval_count"] == 8
        assert done["eval_duration"] > 0  # its tokens/s divides by it
        async with s.post(url + "/api/show", json={"model": MODEL}) as r:
            assert "details" in await r.json()
        async with s.post(url + "/api/embed", json={  # RAG with the Ollama engine
                "input": ["doc one", "doc two"], "model": MODEL, "truncate": True}) as r:
            assert len((await r.json())["embeddings"]) == 2
        async with s.post(url + "/api/generate", json={  # unload
                "model": MODEL, "keep_alive": 0, "prompt": ""}) as r:
            assert (await r.json())["done_reason"] == "unload"
        async with s.post(url + "/api/chat", json={**CHAT, "model": "gone"}) as r:
            # a non-2xx JSON with "error" becomes Open WebUI's HTTPException detail
            assert r.status == 404 and isinstance((await r.json())["error"], str)
