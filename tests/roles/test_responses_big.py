"""A whole /v1/responses reply bigger than the core relays whole (256 KiB) is still kept
by the first hop, up to the store's max_bytes: retrieved and chained on like any."""

from __future__ import annotations

import pytest

from tests.roles.test_responses_hops import MODEL, hops, sdk  # noqa: F401 - fixture

BIG = "y" * 300_000  # echoed in the response object's `instructions`: a reply over 256 KiB


@pytest.mark.parametrize("hop", ["router", "edge"])
async def test_a_big_whole_reply_is_kept(hops, hop):
    c = sdk(hops[hop])
    r = await c.responses.create(model=MODEL, input="hi", instructions=BIG,
                                 max_output_tokens=3)
    assert r.instructions == BIG and r.store is True
    got = await c.responses.retrieve(r.id)
    assert got.id == r.id and got.instructions == BIG
    r2 = await c.responses.create(model=MODEL, input="x", previous_response_id=r.id)
    assert r2.previous_response_id == r.id
