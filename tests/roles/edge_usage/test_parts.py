"""The meter's parts on their own: prices, the estimate, the body splice, the readers on
each API's documented shapes, and the configuration's checks."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from eldric.errors import ConfigError
from eldric.roles.edge.usage import estimate, prices
from eldric.roles.edge.usage.config import Price
from eldric.roles.edge.usage.face import READERS, _reencoded, _with_usage
from eldric.roles.edge.usage.meter import Meter
from eldric.roles.edge.usage.prices import Prices
from eldric.roles.edge.usage.read_openai import usage_only
from eldric.roles.edge.usage.record import Tokens


def test_prices_exact_dated_provider_prefix_and_configured():
    p = Prices({"smollm2*": Price(input=0, output=0), "gpt-4o": Price(input=1, output=2)})
    assert p.of("gpt-4o").input == 1  # configured over the table
    assert p.of("gpt-4o-mini").input == 0.15  # the table's longest name that fits
    assert p.of("gpt-4o-mini-2024-07-18").output == 0.6  # a dated snapshot
    assert p.of("claude-sonnet-4-5-20250929").input == 3.0
    assert p.of("openai/gpt-4.1").input == 2.0  # a provider prefix taken off
    assert p.of("smollm2-135m-instruct") == Price(input=0, output=0)  # priced 0 by config
    assert p.of("gpt-4ofoo") is None  # a prefix only at a name boundary
    assert p.of("SmolLM2-135M-Instruct") is None and p.of("llama3.2:3b") is None  # unpriced


def test_price_table_is_dated_and_sourced_and_no_name_takes_a_dearer_or_cheaper_kin():
    raw = json.loads((Path(prices.__file__).with_name("prices.json")).read_text())
    assert raw["_checked"] and raw["_sources"]  # an operator sees how old the table is
    p = Prices()
    # a longer name priced differently is listed, or it would take its kin's price
    assert p.of("grok-3-fast").input == 5.0 and p.of("grok-3-mini-fast").output == 4.0
    assert p.of("claude-opus-4-7").input == 5.0  # not Opus 4's $15
    assert p.of("o1-mini") is None and p.of("o1-pro") is None  # not o1's price
    assert p.of("openai/gpt-oss-120b").output == 0.6
    assert p.of("deepseek-chat") is None  # moves with each release: config prices it


def test_cost_with_cached_tokens():
    p = Prices({"m": Price(input=2, output=8, cached=0.5), "n": Price(input=2, output=8)})
    t = Tokens(prompt=1000, completion=500, cached=400)
    assert p.cost("m", t) == (600 * 2 + 400 * 0.5 + 500 * 8) / 1e6
    assert p.cost("n", t) == (1000 * 2 + 500 * 8) / 1e6  # no cached price: the input's
    assert p.cost("unknown", t) is None and p.cost("", t) is None


def test_estimate_counts_text_and_messages_never_zero():
    assert estimate.text_tokens("") == 0
    assert estimate.text_tokens("hello world") == 2  # "hello", " world"
    assert estimate.text_tokens(" internationalization") == 3  # 20 letters: 1 + 19 // 8
    body = json.dumps({"model": "m", "temperature": 0.1, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}).encode()
    assert estimate.prompt_tokens(body) == 3 + 1 + 2 * estimate.PER_MESSAGE  # "Be", " brief", "."
    assert estimate.prompt_tokens(b"not json at all") >= 1
    assert estimate.prompt_tokens(b'{"model": "m"}') == 1


def test_include_usage_spliced_in_byte_for_byte():
    body = b' {"model":"m","stream":true,"messages":[{"role":"user","content":"\\u00e9"}]}'
    out = _with_usage(body)
    assert out == b' {"stream_options":{"include_usage":true},' + body[2:]
    assert json.loads(out)["stream_options"] == {"include_usage": True}
    asked_no = b'{"stream":true,"stream_options":{"include_usage":false},"model":"m"}'
    assert json.loads(_reencoded(asked_no)) == {"stream": True, "model": "m",
                                                "stream_options": {"include_usage": True}}
    assert json.loads(_reencoded(b'{"stream":true,"stream_options":null}')) == {
        "stream": True, "stream_options": {"include_usage": True}}
    assert _with_usage(b"[1]") == b"[1]" and _reencoded(b"{") == b"{"


def test_usage_only_selects_the_usage_chunk_alone():
    assert usage_only(b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1}}')
    assert not usage_only(b'data: {"id":"x","choices":[{"delta":{}}],"usage":null}')
    assert not usage_only(b'data: {"choices":[],"usage":null}')
    assert not usage_only(b"data: [DONE]")


def _meter(path: str, events: list[bytes]) -> Meter:
    m = Meter(READERS[path])
    for e in events:
        m.tap(e)
    return m


def test_openai_stream_usage_with_cached_tokens():
    m = _meter("/v1/chat/completions", [
        b'data: {"choices":[{"delta":{"content":"Hi"}}],"usage":null}',
        b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,'
        b'"prompt_tokens_details":{"cached_tokens":8}}}', b"data: [DONE]"])
    assert m.done and m.tokens(b"{}") == Tokens(prompt=12, completion=1, cached=8)


def test_anthropic_stream_prompt_split_across_cache_fields():
    m = _meter("/v1/messages", [
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"usage":{"input_tokens":5,"cache_creation_input_tokens":10,'
        b'"cache_read_input_tokens":20,"output_tokens":1}}}',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hello"}}',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        b'"end_turn"},"usage":{"output_tokens":15}}',
        b'event: message_stop\ndata: {"type":"message_stop"}'])
    assert m.done and m.tokens(b"{}") == Tokens(prompt=35, completion=15, cached=20)


def test_anthropic_stream_left_early_is_estimated_from_what_was_sent():
    m = _meter("/v1/messages", [
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":7,"output_tokens":1}}}',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hello world"}}'])
    assert not m.done
    assert m.tokens(b"{}") == Tokens(prompt=7, completion=2, estimated=True)


def test_responses_whole_and_ollama_whole():
    r = Meter(READERS["/v1/responses"])
    r.whole(b'{"id":"resp_1","object":"response","usage":{"input_tokens":9,'
            b'"input_tokens_details":{"cached_tokens":4},"output_tokens":3,'
            b'"output_tokens_details":{"reasoning_tokens":0},"total_tokens":12}}')
    assert r.tokens(b"{}") == Tokens(prompt=9, completion=3, cached=4)
    o = Meter(READERS["/api/chat"])
    o.whole(b'{"model":"m","message":{"role":"assistant","content":"Hi"},"done":true,'
            b'"prompt_eval_count":26,"eval_count":3}')
    assert o.tokens(b"{}") == Tokens(prompt=26, completion=3)


def test_ollama_cached_prompt_without_prompt_eval_count_is_estimated():
    o = _meter("/api/generate", [b'{"response":"Hi","done":false}',
                                 b'{"response":"","done":true,"eval_count":2}'])
    t = o.tokens(b'{"model":"m","prompt":"hello world"}')
    assert (t.prompt, t.completion, t.estimated) == (2, 2, True)


def test_usage_config_is_strict():
    from eldric.cli import load_config
    from eldric import registry

    roles = registry.resolve("edge")
    base = {"no_tls": True, "http_port": 0}
    with pytest.raises(ConfigError):
        load_config(roles, {**base, "usage": "maybe"}, {}, quick=False)
    with pytest.raises((ConfigError, msgspec.ValidationError)):
        load_config(roles, {**base, "usage_prices": '{"m": {"input": -1, "output": 1}}'},
                    {}, quick=False)
    with pytest.raises((ConfigError, msgspec.ValidationError)):
        load_config(roles, {**base, "usage_prices": '{"m": {"input": 1}}'}, {}, quick=False)
    loaded = load_config(roles, {**base, "usage": "off", "api_key": ["k"],
                                 "usage_prices": '{"m*": {"input": 1, "output": 2}}'},
                         {}, quick=False)
    cfg = loaded.roles["edge"].usage
    assert not cfg.on and cfg.prices == {"m*": Price(input=1, output=2)}


def test_metric_labels_stay_bounded():
    """Client and model names are the clients' to choose: /metrics keeps at most the
    guards' number of each, the rest as "other"."""
    from prometheus_client import CollectorRegistry

    from eldric.roles.edge.metrics import EdgeMetrics
    from eldric.roles.edge.usage.budgets import Budgets
    from eldric.roles.edge.usage.config import UsageConfig
    from eldric.roles.edge.usage.face import Usage
    from eldric.roles.edge.usage.record import Record
    from eldric.roles.edge.usage.store import Recorder
    from eldric.roles.edge.usage.store_sqlite import SqliteUsage

    registry = CollectorRegistry()
    metrics = EdgeMetrics(registry)
    usage = Usage(UsageConfig(), Budgets(),
                  Recorder(SqliteUsage(":memory:"), interval_ms=1000, bound=10), metrics)
    n = metrics.model_label.limit + 50
    for i in range(n):
        usage.record(Record(ts=0, client="c", model=f"m{i}", backend="", path="/v1/x",
                            status=200, tokens=Tokens(prompt=1, completion=1), cost=None,
                            latency_ms=1))
    models = {s.labels["model"] for m in registry.collect() if m.name == "eldric_edge_tokens"
              for s in m.samples if s.name.endswith("_total")}
    assert len(models) == metrics.model_label.limit + 1 and "other" in models
    total = sum(s.value for m in registry.collect() if m.name == "eldric_edge_tokens"
                for s in m.samples if s.name.endswith("_total"))
    assert total == 2 * n  # nothing lost, only grouped


def test_responses_stream_ends_with_its_usage_or_is_estimated():
    created = (b'event: response.created\ndata: {"type":"response.created","response":'
               b'{"id":"resp_1","status":"in_progress","usage":null}}')
    delta = (b'event: response.output_text.delta\ndata: {"type":'
             b'"response.output_text.delta","item_id":"msg_1","delta":"Hello world"}')
    done = (b'event: response.completed\ndata: {"type":"response.completed","response":'
            b'{"id":"resp_1","status":"completed","usage":{"input_tokens":5,'
            b'"input_tokens_details":{"cached_tokens":0},"output_tokens":2}}}')
    m = _meter("/v1/responses", [created, delta, done])
    assert m.done and m.tokens(b"{}") == Tokens(prompt=5, completion=2)
    left = _meter("/v1/responses", [created, delta])
    assert not left.done
    t = left.tokens(b'{"model":"m","input":"hi there"}')
    assert (t.prompt, t.completion, t.estimated) == (2, 2, True)
