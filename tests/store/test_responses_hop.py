"""The first hop's part (eldric.store.responses_hop) on its own: what it forwards, what it
keeps from a whole or a streamed reply, and a store that fails."""

from __future__ import annotations

import msgspec
import pytest

from eldric.errors import EldricError
from eldric.exchange import Reply
from eldric.store.responses import Responses, ResponsesConfig, Stored
from eldric.store.responses_hop import begin

# past any recursion limit msgspec meets (mypy, run in the suite, raises it to 16384)
DEEP = 100_000


class Memory:
    """A Backend in a dict; `broken` makes every call raise, as an unreachable Redis."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], bytes] = {}
        self.broken = False

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    def _check(self) -> None:
        if self.broken:
            raise ConnectionError("the store went away")

    async def put(self, owner: str, rid: str, value: bytes) -> None:
        self._check()
        self.rows[owner, rid] = value

    async def get(self, owner: str, rid: str) -> bytes | None:
        self._check()
        return self.rows.get((owner, rid))

    async def delete(self, owner: str, rid: str) -> bool:
        self._check()
        return self.rows.pop((owner, rid), None) is not None


@pytest.fixture
def store() -> Responses:
    return Responses(Memory(), ResponsesConfig())


def body(**fields) -> bytes:
    return msgspec.json.encode({"model": "m", "input": "hi", **fields})


def response(rid: str, text: str = "out") -> dict:
    return {"id": rid, "object": "response", "store": False, "previous_response_id": None,
            "output": [{"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": text, "annotations": []}]}]}


async def test_nothing_to_do(store):
    assert await begin(None, "", body()) is None  # the store is off
    assert await begin(store, "", body(store=False)) is None  # the client keeps nothing
    assert await begin(store, "", b"{not json") is None  # the next hop refuses it
    assert await begin(store, "", b'{"store": "yes"}') is None


async def test_forwarded_stateless_and_the_whole_reply_kept(store):
    turn = await begin(store, "o", body(metadata={"a": "b"}))
    assert msgspec.json.decode(turn.body) == {"model": "m", "input": "hi",
                                              "metadata": {"a": "b"}, "store": False}
    answer = turn.whole(Reply(200, [], msgspec.json.encode(response("resp_1"))))
    sent = msgspec.json.decode(answer.body)
    assert sent["store"] is True and sent["previous_response_id"] is None
    kept = await store.get("o", "resp_1")
    assert kept.input == [{"type": "message", "role": "user",
                           "content": [{"type": "input_text", "text": "hi"}]}]
    # and the chain: the earlier items, then the new input
    turn = await begin(store, "o", body(input=[{"role": "user", "content": "more"}],
                                        previous_response_id="resp_1"))
    forwarded = msgspec.json.decode(turn.body)
    assert "previous_response_id" not in forwarded and forwarded["store"] is False
    assert [i.get("role") for i in forwarded["input"]] == ["user", "assistant", "user"]
    answer = turn.whole(Reply(200, [], msgspec.json.encode(response("resp_2"))))
    assert msgspec.json.decode(answer.body)["previous_response_id"] == "resp_1"
    assert (await store.get("o", "resp_2")).previous == "resp_1"


async def test_store_false_with_a_previous_id_expands_and_keeps_nothing(store):
    store.save("o", Stored(response("resp_1"), []))
    turn = await begin(store, "o", body(store=False, previous_response_id="resp_1"))
    answer = turn.whole(Reply(200, [], msgspec.json.encode(response("resp_2"))))
    sent = msgspec.json.decode(answer.body)
    assert sent["store"] is False and sent["previous_response_id"] == "resp_1"
    assert await store.get("o", "resp_2") is None


async def test_unknown_previous_id(store):
    with pytest.raises(EldricError) as info:
        await begin(store, "o", body(previous_response_id="resp_x"))
    assert (info.value.status, info.value.code, info.value.param) == (
        404, "response_not_found", "previous_response_id")
    # a hop behind may know it: sent on untouched
    assert await begin(store, "o", body(previous_response_id="resp_x"), behind=True) is None


async def test_what_is_not_a_response_is_left_alone(store):
    turn = await begin(store, "o", body())
    for answer in (Reply(400, [], b'{"error": {"message": "no"}}'), Reply(200, [], b"[1]"),
                   Reply(200, [], b"not json"), Reply(200, [], b'{"object": "list"}')):
        before = answer.body
        assert turn.whole(answer).body == before
    assert not store.backend.rows


async def test_the_tap_keeps_the_terminal_event_only(store):
    turn = await begin(store, "o", body(stream=True))
    turn.tap(b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
             b'"delta":"response.completed"}')  # the words, not the event
    turn.tap(b"event: response.completed\ndata: {not json")
    await store.get("o", "resp_s")
    assert not store.backend.rows
    done = {"type": "response.completed", "response": response("resp_s"),
            "sequence_number": 9}
    turn.tap(b"event: response.completed\ndata: " + msgspec.json.encode(done))
    kept = await store.get("o", "resp_s")
    assert kept.response["store"] is True and kept.input[0]["role"] == "user"


async def test_a_store_that_fails(store):
    store.backend.broken = True
    store.save("o", Stored(response("resp_1"), []))  # logged, not raised
    for call in (store.get("o", "resp_1"), store.delete("o", "resp_1")):
        with pytest.raises(EldricError) as info:
            await call
        assert (info.value.status, info.value.code) == (503, "store_unavailable")
    assert not store._pending  # the failed write is not waited for again


@pytest.mark.parametrize("bad", [5, {"a": 1}, [5, "junk"], [{"role": "user", "content": "x"}, 5]])
async def test_a_bad_input_with_a_previous_id_goes_on_as_sent(store, bad):
    """The client's value, unexpanded, for the translator to refuse (not dropped: that
    would answer a 200 to a body the API refuses)."""
    store.save("o", Stored(response("resp_1"), []))
    turn = await begin(store, "o", body(input=bad, previous_response_id="resp_1"))
    sent = msgspec.json.decode(turn.body)
    assert sent["input"] == bad and "previous_response_id" not in sent


async def test_a_bad_input_with_a_previous_id_is_the_translators_400(store):
    from eldric.wire.responses import translator

    store.save("o", Stored(response("resp_1"), []))
    for bad, param in ((5, "input"), ([5, "junk"], "input[0]")):
        turn = await begin(store, "o", body(input=bad, previous_response_id="resp_1"))
        with pytest.raises(EldricError) as info:
            translator(turn.body)
        assert (info.value.status, info.value.param) == (400, param)


async def test_a_deeply_nested_body_is_a_400(store):
    deep = b'{"model":"m","input":' + b"[" * DEEP + b"]" * DEEP + b"}"
    with pytest.raises(EldricError) as info:
        await begin(store, "o", deep)
    assert info.value.status == 400
