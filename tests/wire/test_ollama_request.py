"""Ollama request bodies as Chat Completions bodies (eldric.wire.ollama_chat,
ollama_request): Ollama's documented examples (docs/api.md) in, the body sent upstream
checked; a body Ollama would refuse or eldric cannot translate is a 400 naming the field."""

from __future__ import annotations

import json

import pytest

from eldric.errors import BadRequest
from eldric.wire.ollama_chat import chat, generate

# docs/api.md "Chat request (with images)" starts with this PNG (base64); cut to its head.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAG0AAABmCAYAAADBPx+VAAAACXBIWXMAAAsTAAALEwEAmpwYAAAAAXNSR0IArs4c6QAAAARnQU1BAACxjwv8YQUAAA3VSURBVHgB7Z27r0zdG8fX743i1bi1ikMoFMQloXRpKFFIqI7LH4BEQ+NWIkjQuSWCRIEoULk0gsK1kCBI0IhrQVT7tz/7zZo888yz1r7MnDl7z5xvsjkzs2fP3uu71nNfa7lkAsm7d++Sffv2JbNmzUqcc8m0adOSzZs3Z+/XES4ZckAWJEGWPiCxjsQNLWmQsWjRIpMseaxcuTKpG/7HP27I8P79e7dq1ars/yL4/v27S0ejqwv+cUOGEGGpKHR37tzJCEpHV9tnT58+dXXCJDdECBE2Ojrqjh071hpNECjx4cMHVycM1Uhbv359B2F79+51586daxN/+pyRkRFXKyRDAqxEp4yMlDDzXG1NPnnyJKkThoK0VFd1ELZu3TrzXKxKfW7dMBQ6bcuWLW2v0VlHjx41z717927ba22U9APcw7Nnz1oGEPeL3m3p2mTAYYnFmMOMXybPPXv2bNIPpFZr1NHn4HMw0KRBjg9NuRw95s8PEcz/6DZELQd/09C9QGq5RsmSRybqkwHGjh07OsJSsYYm3ijPpyHzoiacg35MLdDSIS/O1yM778jOTwYUkKNHWUzUWaOsylE00MyI0fcnOwIdjvtNdW/HZwNLGg+sR1kMepSNJXmIwxBZiG8tDTpEZzKg0GItNsosY8USkxDhD0Rinuiko2gfL/RbiD2LZAjU9zKQJj8RDR0vJBR1/Phx9+PHj9Z7REF4nTZkxzX4LCXHrV271qXkBAPGfP/atWvu/PnzHe4C97F48eIsRLZ9+3a3f/9+87dwP1JxaF7/3r17ba+5l4EcaVo0lj3SBq5kGTJSQmLWMjgYNei2GPT1MuMqGTDEFHzeQSP2wi/jGnkmPJ/nhccs44jvDAxpVcxnq0F6eT8h4ni/iIWpR5lPyA6ETkNXoSukvpJAD3AsXLiwpZs49+fPn5ke4j10TqYvegSfn0OnafC+Tv9ooA/JPkgQysqQNBzagXY55nO/oa1F7qvIPWkRL12WRpMWUvpVDYmxAPehxWSe8ZEXL20sadYIozfmNch4QJPAfeJgW3rNsnzphBKNJM2KKODo1rVOMRYik5ETy3ix4qWNI81qAAirizgMIc+yhTytx0JWZuNI03qsrgWlGtwjoS9XwgUhWGyhUaRZZQNNIEwCiXD16tXcAHUs79co0vSD8rrJCIW98pzvxpAWyyo3HYwqS0+H0BjStClcZJT5coMm6D2LOF8TolGJtK9fvyZpyiC5ePFi9nc/oJU4eiEP0jVoAnHa9wyJycITMP78+eMeP37sXrx44d6+fdt6f82aNdkx1pg9e3Zb5W+RSRE+n+VjksQWifvVaTKFhn5O8my63K8Qabdv33b379/PiAP//vuvW7BggZszZ072/+TJk91YgkafPn166zXB1rQHFvouAWHq9z3SEevSUerqCn2/dDCeta2jxYbr69evk4MHDyY7d+7MjhMnTiTPnz9Pfv/+nfQT2ggpO2dMF8cghuoM7Ygj5iWCqRlGFml0QC/ftGmTmzt3rmsaKDsgBSPh0/8yPeLLBihLkOKJc0jp8H8vUzcxIA1k6QJ/c78tWEyj5P3o4u9+jywNPdJi5rAH9x0KHcl4Hg570eQp3+vHXGyrmEeigzQsQsjavXt38ujRo44LQuDDhw+TW7duRS1HGgMxhNXHgflaNTOsHyKvHK5Ijo2jbFjJBQK9YwFd6RVMzfgRBmEfP37suBBm/p49e1qjEP2mwTViNRo0VJWH1deMXcNK08uUjVUu7s/zRaL+oLNxz1bpANco4npUgX4G2eFbpDFyQoQxojBCpEGSytmOH8qrH5Q9vuzD6ofQylkCUmh8DBAr+q8JCyVNtWQIidKQE9wNtLSQnS4jDSsxNHogzFuQBw4cyM61UKVsjfr3ooBkPSqqQHesUPWVtzi9/vQi1T+rJj7WiTz4Pt/l3LxUkr5P2VYZaZ4URpsE+st/dujQoaBBYokbrz/8TJNQYLSonrPS9kUaSkPeZyj1AWSj+d+VBoy1pIWVNed8P0Ll/ee5HdGRhrHhR5GGN0r4LGZBaj8oFDJitBTJzIZgFcmU0Y8ytWMZMzJOaXUSrUs5RxKnrxmbb5YXO9VGUhtpXldhEUogFr3IzIsvlpmdosVcGVGXFWp2oU9kLFL3dEkSz6NHEY1sjSRdIuDFWEhd8KxFqsRi1uM/nz9/zpxnwlESONdg6dKlbsaMGS4EHFHtjFIDHwKOo46l4TxSuxgDzi+rE2jg+BaFruOX4HXa0Nnf1lwAPufZeF8/r6zD97WK2qFnGjBxTw5qNGPxT+5T/r7/7RawFC3j4vTp09koCxkeHjqbHJqArmH5UrFKKksnxrK7FuRIs8STfBZv+luugXZ2pR/pP9Ois4z+TiMzUUkUjD0iEi1fzX8GmXyuxUBRcaUfykV0YZnlJGKQpOiGB76x5GeWkWWJc3mOrK6S7xdND+W5N6XyaRgtWJFe13GkaZnKOsYqGdOVVVbGupsyA/l7emTLHi7vwTdirNEt0qxnzAvBFcnQF16xh/TMpUuXHDowhlA9vQVraQhkudRdzOnK+04ZSP3DUhVSP61YsaLtd/ks7ZgtPcXqPqEafHkdqa84X6aCeL7YWlv6edGFHb+ZFICPlljHhg0bKuk0CSvVznWsotRu433alNdFrqG45ejoaPCaUkWERpLXjzFL2Rpllp7PJU2a/v7Ab8N05/9t27Z16KUqoFGsxnI9EosS2niSYg9SpU6B4JgTrvVW1flt1sT+0ADIJU2maXzcUTraGCRaL1Wp9rUMk16PMom8QhruxzvZIegJjFU7LLCePfS8uaQdPny4jTTL0dbee5mYokQsXTIWNY46kuMbnt8Kmec+LGWtOVIl9cT1rCB0V8WqkjAsRwta93TbwNYoGKsUSChN44lgBNCoHLHzquYKrU6qZ8lolCIN0Rh6cP0Q3U6I6IXILYOQI513hJaSKAorFpuHXJNfVlpRtmYBk1Su1obZr5dnKAO+L10Hrj3WZW+E3qh6IszE37F6EB+68mGpvKm4eb9bFrlzrok7fvr0Kfv727dvWRmdVTJHw0qiiCUSZ6wCK+7XL/AcsgNyL74DQQ730sv78Su7+t/A36MdY0sW5o40ahslXr58aZ5HtZB8GH64m9EmMZ7FpYw4T6QnrZfgenrhFxaSiSGXtPnz57e9TkNZLvTjeqhr734CNtrK41L40sUQckmj1lGKQ0rC37x544r8eNXRpnVE3ZZY7zXo8NomiO0ZUCj2uHz58rbXoZ6gc0uA+F6ZeKS/jhRDUq8MKrTho9fEkihMmhxtBI1DxKFY9XLpVcSkfoi8JGnToZO5sU5aiDQIW716ddt7ZLYtMQlhECdBGXZZMWldY5BHm5xgAroWj4C0hbYkSc/jBmggIrXJWlZM6pSETsEPGqZOndr2uuuR5rF169a2HoHPdurUKZM4CO1WTPqaDaAd+GFGKdIQkxAn9RuEWcTRyN2KSUgiSgF5aWzPTeA/lN5rZubMmR2bE4SIC4nJoltgAV/dVefZm72AtctUCJU2CMJ327hxY9t7EHbkyJFseq+EJSY16RPo3Dkq1kkr7+q0bNmyDuLQcZBEPYmHVdOBiJyIlrRDq41YPWfXOxUysi5fvtyaj+2BpcnsUV/oSoEMOk2CQGlr4ckhBwaetBhjCwH0ZHtJROPJkyc7UjcYLDjmrH7ADTEBXFfOYmB0k9oYBOjJ8b4aOYSe7QkKcYhFlq3QYLQhSidNmtS2RATwy8YOM3EQJsUjKiaWZ+vZToUQgzhkHXudb/PW5YMHD9yZM2faPsMwoc7RciYJXbGuBqJ1UIGKKLv915jsvgtJxCZDubdXr165mzdvtr1Hz5LONA8jrUwKPqsmVesKa49S3Q4WxmRPUEYdTjgiUcfUwLx589ySJUva3oMkP6IYddq6HMS4o55xBJBUeRjzfa4Zdeg56QZ43LhxoyPo7Lf1kNt7oO8wWAbNwaYjIv5lhyS7kRf96dvm5Jah8vfvX3flyhX35cuX6HfzFHOToS1H4BenCaHvO8pr8iDuwoUL7tevX+b5ZdbBair0xkFIlFDlW4ZknEClsp/TzXyAKVOmmHWFVSbDNw1l1+4f90U6IY/q4V27dpnE9bJ+v87QEydjqx/UamVVPRG+mwkNTYN+9tjkwzEx+atCm/X9WvWtDtAb68Wy9LXa1UmvCDDIpPkyOQ5ZwSzJ4jMrvFcr0rSjOUh+GcT4LSg5ugkW1Io0/SCDQBojh0hPlaJdah+tkVYrnTZowP8iq1F1TgMBBauufyB33x1v+NWFYmT5KmppgHC+NkAgbmRkpD3yn9QIseXymoTQFGQmIOKTxiZIWpvAatenVqRVXf2nTrAWMsPnKrMZHz6bJq5jvce6QK8J1cQNgKxlJapMPdZSR64/UivS9NztpkVEdKcrs5alhhWP9NeqlfWopzhZScI6QxseegZRGeg5a8C3Re1Mfl1ScP36ddcUaMuv24iOJtz7sbUjTS4qBvKmstYJoUauiuD3k5qhyr7QdUHMeCgLa1Ear9NquemdXgmum4fvJ6w1lqsuDhNrg1qSpleJK7K3TF0Q2jSd94uSZ60kK1e3qyVpQK6PVWXp2/FC3mp6jBhKKOiY2h3gtUV64TWM6wDETRPLDfSakXmH3w8g9Jlug8ZtTt4kVF0kLUYYmCCtD/DrQ5YhMGbA9L3ucdjh0y8kOHW5gU/VEEmJTcL4Pz/f7mgoAbYkAAAAAElFTkSuQmCC"[:64]
JPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQN"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather in a given city",
    "parameters": {"type": "object", "properties": {"city": {
        "type": "string", "description": "The city to get the weather for"}},
        "required": ["city"]}}}


def sent(factory, body: dict) -> dict:
    return json.loads(factory(json.dumps(body).encode()).request())


def refused(factory, body) -> BadRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadRequest) as info:
        factory(raw)
    assert info.value.status == 400
    return info.value


def test_a_streamed_chat_as_documented():
    # docs/api.md "Chat request (Streaming)": no `stream` field, so Ollama streams
    t = chat(b'{"model": "llama3.2", "messages": [{"role": "user", '
             b'"content": "why is the sky blue?"}]}')
    assert (t.stream, t.model, t.upstream_path) == (True, "llama3.2", "/v1/chat/completions")
    assert t.media_type == "application/x-ndjson"
    assert json.loads(t.request()) == {
        "model": "llama3.2", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "why is the sky blue?"}]}


def test_stream_false_and_null():
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    assert "stream_options" not in sent(chat, body | {"stream": False})
    assert sent(chat, body | {"stream": False})["stream"] is False
    assert chat(json.dumps(body | {"stream": None}).encode()).stream is True


def test_history_with_tools_as_documented():
    # docs/api.md "Chat request (With history, with tools)": arguments are an object,
    # the call has no id, the result names the tool
    body = sent(chat, {"model": "llama3.2", "stream": False, "tools": [WEATHER_TOOL],
                       "messages": [
        {"role": "user", "content": "what is the weather in Toronto?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}]},
        {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"}]})
    call = body["messages"][1]
    assert call == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1_0", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Toronto"}'}}]}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_1_0",
                                   "content": "11 degrees celsius"}
    assert body["tools"] == [WEATHER_TOOL]


def test_parallel_results_matched_by_tool_name_and_ids_kept():
    # Open WebUI sends ids (and the result's tool_call_id); the ollama client names only
    body = sent(chat, {"model": "m", "messages": [
        {"role": "user", "content": "weather and time in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_w", "function": {"index": 0, "name": "get_weather",
                                          "arguments": {"city": "Paris"}}},
            {"function": {"index": 1, "name": "get_time", "arguments": {}}}]},
        {"role": "tool", "content": "14:00", "tool_name": "get_time"},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_w"}]})
    ids = [c["id"] for c in body["messages"][1]["tool_calls"]]
    assert ids == ["call_w", "call_1_1"]
    assert [m["tool_call_id"] for m in body["messages"][2:]] == ["call_1_1", "call_w"]


def test_roles_are_lowered_and_content_may_be_missing():
    body = sent(chat, {"model": "m", "messages": [{"role": "SYSTEM", "content": "be brief"},
                                                  {"role": "User"}]})
    assert body["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": ""}]


def test_images_become_data_urls():
    body = sent(chat, {"model": "llava", "messages": [
        {"role": "user", "content": "what is in this image?", "images": [PNG, JPEG]}]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + JPEG}}]


@pytest.mark.parametrize(("images", "param"), [
    (["not base64!"], "messages[0].images[0]"),
    ([PNG, "AAAAAAAAAAAAAAAA"], "messages[0].images[1]"),  # base64, but no image
    ([5], "messages[0].images[0]"),
    ("iVBOR", "messages[0].images"),
])
def test_bad_images_are_refused(images, param):
    err = refused(chat, {"model": "m", "messages": [
        {"role": "user", "content": "?", "images": images}]})
    assert err.param == param


def test_format_json_and_schema_as_documented():
    base = {"model": "llama3.1", "messages": [{"role": "user", "content": "?"}]}
    assert sent(chat, base | {"format": "json"})["response_format"] == {"type": "json_object"}
    # docs/api.md "Chat request (Structured outputs)"
    schema = {"type": "object", "properties": {"age": {"type": "integer"},
                                               "available": {"type": "boolean"}},
              "required": ["age", "available"]}
    assert sent(chat, base | {"format": schema})["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "format", "schema": schema}}
    assert "response_format" not in sent(chat, base | {"format": ""})
    assert refused(chat, base | {"format": "xml"}).param == "format"


def test_options_as_documented():
    # docs/api.md "Generate request (With options)": every option
    body = sent(generate, {"model": "llama3.2", "prompt": "Why is the sky blue?",
                           "stream": False, "keep_alive": "5m", "options": {
        "num_keep": 5, "seed": 42, "num_predict": 100, "draft_num_predict": 4, "top_k": 20,
        "top_p": 0.9, "min_p": 0.0, "typical_p": 0.7, "repeat_last_n": 33,
        "temperature": 0.8, "repeat_penalty": 1.2, "presence_penalty": 1.5,
        "frequency_penalty": 1.0, "penalize_newline": True, "stop": ["\n", "user:"],
        "numa": False, "num_ctx": 1024, "num_batch": 2, "num_gpu": 1, "main_gpu": 0,
        "use_mmap": True, "num_thread": 8}})
    assert body == {"model": "llama3.2", "stream": False, "seed": 42, "max_tokens": 100,
                    "top_k": 20, "top_p": 0.9, "min_p": 0.0, "typical_p": 0.7,
                    "repeat_last_n": 33, "temperature": 0.8, "repeat_penalty": 1.2,
                    "presence_penalty": 1.5, "frequency_penalty": 1.0,
                    "stop": ["\n", "user:"],
                    "messages": [{"role": "user", "content": "Why is the sky blue?"}]}


def test_unlimited_num_predict_sends_no_max_tokens():
    body = sent(chat, {"model": "m", "messages": [{"role": "user", "content": "?"}],
                       "options": {"num_predict": -1, "temperature": None}})
    assert "max_tokens" not in body and "temperature" not in body


@pytest.mark.parametrize(("options", "param"), [
    ({"temperature": "hot"}, "options.temperature"),
    ({"seed": 1.5}, "options.seed"),
    ({"top_k": True}, "options.top_k"),
    ({"num_predict": "100"}, "options.num_predict"),
    ({"stop": [1]}, "options.stop"),
])
def test_bad_options_are_refused(options, param):
    err = refused(chat, {"model": "m", "messages": [{"role": "user", "content": "?"}],
                         "options": options})
    assert err.param == param


def test_think_levels():
    base = {"model": "m", "messages": [{"role": "user", "content": "?"}]}
    assert sent(chat, base | {"think": "low"})["reasoning_effort"] == "low"
    assert sent(chat, base | {"think": "max"})["reasoning_effort"] == "high"
    assert "reasoning_effort" not in sent(chat, base | {"think": True})
    assert "reasoning_effort" not in sent(chat, base | {"think": False})
    assert refused(chat, base | {"think": "extreme"}).param == "think"


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "?"}]}, "model"),
    ({"model": "", "messages": [{"role": "user", "content": "?"}]}, "model"),
    ({"model": "m", "messages": "hi"}, "messages"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "robot", "content": "?"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": ["?"]}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "system", "content": "?", "images": [PNG]}]},
     "messages[0].images"),
    ({"model": "m", "messages": [{"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": '{"a": 1}'}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]},
     "messages[0].tool_calls[0].function"),
    ({"model": "m", "messages": [{"role": "user", "content": "?"}],
      "tools": [{"type": "retrieval"}]}, "tools[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": "?"}], "stream": "yes"},
     "stream"),
])
def test_bad_chat_bodies_name_the_field(body, param):
    assert refused(chat, body).param == param


def test_not_json_is_refused():
    assert refused(chat, b"{not json").code == "invalid_json"
    assert refused(chat, b"").code == "invalid_body"


def test_generate_with_system_and_images():
    body = sent(generate, {"model": "llava", "prompt": "What is in this picture?",
                           "system": "Answer in French.", "images": [PNG]})
    assert body["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]}]
    assert body["stream"] is True


def test_raw_generate_goes_to_completions_untemplated():
    # docs/api.md "Request (Raw Mode)"
    t = generate(b'{"model": "mistral", "prompt": "[INST] why is the sky blue? [/INST]",'
                 b' "raw": true, "stream": false}')
    assert t.upstream_path == "/v1/completions"
    assert json.loads(t.request()) == {"model": "mistral", "stream": False,
                                       "prompt": "[INST] why is the sky blue? [/INST]"}


@pytest.mark.parametrize(("extra", "param"), [
    ({"suffix": "    return result"}, "suffix"),
    ({"template": "{{ .Prompt }}"}, "template"),
    ({"context": [1, 2, 3]}, "context"),
    ({"raw": True, "system": "be brief"}, "system"),
    ({"raw": True, "images": [PNG]}, "images"),
    ({"images": ["AAAAAAAAAAAAAAAA"]}, "images[0]"),
])
def test_generate_fields_without_an_equivalent_are_refused(extra, param):
    err = refused(generate, {"model": "codellama:code", "prompt": "def compute_gcd(a, b):"}
                  | extra)
    assert err.param == param


@pytest.mark.parametrize(("factory", "body", "reason"), [
    (chat, {"model": "llama3.2", "messages": []}, "load"),
    (chat, {"model": "llama3.2", "messages": [], "keep_alive": 0}, "unload"),
    (generate, {"model": "llama3.2"}, "load"),
    # what Open WebUI sends to unload a model
    (generate, {"model": "llama3.2", "keep_alive": 0, "prompt": ""}, "unload"),
    (generate, {"model": "llama3.2", "keep_alive": "0s"}, "unload"),
    (generate, {"model": "llama3.2", "keep_alive": "5m"}, "load"),
])
def test_an_empty_request_loads_or_unloads(factory, body, reason):
    t = factory(json.dumps(body).encode())
    assert t.stream is False  # Ollama answers it with one JSON object
    # the backend is asked for one token, so an unknown model is its 404
    assert json.loads(t.request()) == {"model": "llama3.2", "messages": [
        {"role": "user", "content": ""}], "max_tokens": 1, "stream": False}
    reply = json.loads(t.whole(b'{"choices": [{"message": {"content": "x"}}]}'))
    assert (reply["done"], reply["done_reason"], reply["model"]) == (True, reason, "llama3.2")
    assert ("message" in reply) is (factory is chat)
