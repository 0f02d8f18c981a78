"""What the first eldric hop of a /v1/responses request does with its state.

The hop the client talks to (the edge, or a router, worker or cloud worker talked to
directly) keeps the responses it produced and expands ``previous_response_id``; it then
forwards a request with no state left in it: the whole conversation in ``input``, no
``previous_response_id``, ``store: false``. Every later hop, eldric's or a backend's own
(llama.cpp, vLLM, OpenAI), answers that request as it stands: none stores a copy or looks an
id up, and nothing (no header, no flag) has to be trusted for that. The reply is the first
hop's to keep: a whole one read as it passes, a streamed one by a read-only tap that picks
its terminal event out of the stream. The echo of the two fields the hop changed
(``store``, ``previous_response_id``) is set back to what the client sent in the kept copy
and in a whole reply; a streamed reply's events, relayed byte for byte, echo what the
backend was sent (documented in docs/design-notes.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from eldric import keys
from eldric.auth import presented_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, NotFound
from eldric.exchange import Answer, LaneRequest
from eldric.store.responses import Responses, Stored, owner_of
from eldric.stream.sse import Tap
from eldric.wire.openai_reply import sse_data

_decode = msgspec.json.decode
_encode = msgspec.json.encode

PATH = "/v1/responses"
# the terminal events whose response is worth keeping (a failed one continues nothing)
_TERMINAL = ("response.completed", "response.incomplete")
_KEPT = tuple(t.encode() for t in _TERMINAL)  # looked for before an event is decoded


class _Head(msgspec.Struct):
    """What decides whether the hop has anything to do (the rest is not decoded)."""

    store: bool | None = None
    previous_response_id: str | None = None


_head = msgspec.json.Decoder(_Head)


def own_items(value: Any) -> list[dict] | None:
    """The request's `input` as items (a string is one user message); None for a value
    that is no input (a number, an object, an array holding a non-object): that value then
    goes on as the client sent it, for the translator (or the backend) to refuse."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": value}]}]
    if isinstance(value, list) and all(isinstance(i, dict) for i in value):
        return value
    return None


class UnknownResponse(NotFound):
    code = "response_not_found"


def _not_found(rid: str, param: str | None = None) -> UnknownResponse:
    return UnknownResponse(f"no response with id {rid!r} (unknown, expired, deleted, or "
                           "made with another API key)", param=param)


class Turn:
    """One request's state at the first hop: the body to forward and the reply's capture."""

    __slots__ = ("store", "owner", "body", "keep", "input", "previous")

    def __init__(self, store: Responses, owner: str, body: bytes, keep: bool,
                 input: list[dict], previous: str | None) -> None:
        self.store = store
        self.owner = owner
        self.body = body
        self.keep = keep
        self.input = input
        self.previous = previous

    def _save(self, response: dict) -> dict:
        response["previous_response_id"] = self.previous
        response["store"] = True
        self.store.save(self.owner, Stored(response, self.input, self.previous))
        return response

    def whole(self, answer: Any) -> Any:
        """A whole 2xx reply (a fast-lane Reply or a web.Response): kept, echo set back."""
        body = getattr(answer, "body", None)
        if not 200 <= getattr(answer, "status", 0) < 300 or not isinstance(body, bytes):
            return answer
        try:
            response = _decode(body)
        except (msgspec.DecodeError, RecursionError):
            return answer
        if isinstance(response, dict) and response.get("object") == "response":
            if self.keep:
                response = self._save(response)
            else:
                response["previous_response_id"] = self.previous
            answer.body = _encode(response)
        return answer

    def tap(self, event: bytes) -> None:
        """Each streamed event, read-only: the terminal one's response is kept."""
        if not (_KEPT[0] in event or _KEPT[1] in event):
            return
        raw = sse_data(event)
        try:
            data = _decode(raw) if raw is not None else None
        except (msgspec.DecodeError, RecursionError):
            return
        if isinstance(data, dict) and data.get("type") in _TERMINAL \
                and isinstance(data.get("response"), dict):
            self._save(data["response"])


async def begin(store: Responses | None, owner: str, body: bytes, behind: bool = False
                ) -> Turn | None:
    """The Turn for a POST /v1/responses body, or None when there is no state to keep
    (the store is off, or the client asked for none): the body then goes on untouched.
    A previous_response_id this owner has no response for is a 404 (the API's shape,
    eldric's code), unless a hop `behind` this one may know it: the body then goes on
    untouched too, for that hop to answer. A body that is not a Responses request is left
    to the next hop to refuse."""
    if store is None:
        return None
    try:
        head = _head.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    except RecursionError:  # msgspec's bound on nesting, met skipping the other fields
        raise BadRequest("the request body is nested too deeply") from None
    keep = head.store is not False
    if not keep and head.previous_response_id is None:
        return None
    req = _decode(body)
    items = own_items(req.get("input"))
    if head.previous_response_id is not None:
        earlier = await store.conversation(owner, head.previous_response_id)
        if earlier is None:
            if behind:
                return None
            raise _not_found(head.previous_response_id, "previous_response_id")
        if items is not None:
            req["input"] = [*earlier, *items]
        del req["previous_response_id"]
    req["store"] = False
    return Turn(store, owner, _encode(req), keep, items or [], head.previous_response_id)


async def key_owner(request: LaneRequest) -> tuple[str, dict[str, str]]:
    """Whose request this is on a hop without clients of its own (router, worker, cloud):
    the key it presents, if any; and no headers of the hop's own for the reply."""
    return owner_of(presented_key(request)), {}


Relay = Callable[[bytes, Tap | None], Awaitable[Answer]]


async def stateful(request: LaneRequest, body: bytes, relay: Relay, owner: str | None = None,
                   behind: bool = False) -> Answer:
    """A POST to a hop that may keep /v1/responses state: `relay(body, tap)` with the
    hop's store around it (the expanded, stateless body; the tap that keeps a streamed
    reply) when it has one and the path is /v1/responses; else `relay(body, None)`.
    `owner`: whose request (default: the key it presents); `behind`: see begin()."""
    store = request.app.get(keys.RESPONSES)
    turn = None
    if store is not None and request.path == PATH and request.method == "POST":
        if owner is None:
            owner = owner_of(presented_key(request))
        turn = await begin(store, owner, body, behind)
    if turn is None:
        return await relay(body, None)
    # a whole reply bigger than the core relays whole is still one to keep (up to what
    # the store keeps): read whole, not streamed past the Turn
    request[keys.HOP].whole_limit = turn.store.cfg.max_bytes
    return turn.whole(await relay(turn.body, turn.tap))


# ---------------------------------------------------------------- GET / DELETE


async def retrieve(store: Responses, owner: str, rid: str) -> web.Response:
    stored = await store.get(owner, rid)
    if stored is None:
        raise _not_found(rid)
    return json_response(stored.response)


async def delete(store: Responses, owner: str, rid: str) -> web.Response:
    if not await store.delete(owner, rid):
        raise _not_found(rid)
    return json_response({"id": rid, "object": "response", "deleted": True})


async def input_items(store: Responses, owner: str, rid: str,
                      query: Any) -> web.Response:
    """The request's own input items, each with an id; `limit` (1-100, default 20),
    `order` (asc or desc, the default) and `after` as the API has them."""
    stored = await store.get(owner, rid)
    if stored is None:
        raise _not_found(rid)
    try:
        limit = int(query.get("limit", 20))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise BadRequest("limit must be an integer from 1 to 100", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc", param="order")
    items = [{"id": f"msg_{rid.removeprefix('resp_')}_{i}", **item}
             if "id" not in item else item for i, item in enumerate(stored.input)]
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after is not None:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = items[:limit]
    return json_response({"object": "list", "data": page,
                          "first_id": page[0]["id"] if page else None,
                          "last_id": page[-1]["id"] if page else None,
                          "has_more": len(items) > limit})


Owner = Callable[[LaneRequest], Awaitable[tuple[str, dict[str, str]]]]


# a role's relay of the path (its catch-all /v1 handler), on either lane's request
Behind = Callable[[Any], Awaitable[Any]]


def _stored(action: Callable[..., Awaitable[web.Response]], owner: Owner,
            behind: Behind | None) -> Callable[[web.Request], Awaitable[Any]]:
    async def handler(request: web.Request) -> Any:
        who, headers = await owner(request)
        try:
            args = (request.query,) if action is input_items else ()
            try:
                resp = await action(request.app[keys.RESPONSES], who,
                                    request.match_info["id"], *args)
            except UnknownResponse:
                if behind is None:
                    raise
                return await behind(request)
        except EldricError as exc:
            exc.headers = {**headers, **exc.headers}
            raise
        resp.headers.update(headers)
        return resp
    return handler


def add_stored_routes(app: web.Application, owner: Owner = key_owner,
                      behind: Behind | None = None) -> None:
    """GET and DELETE of a stored response (and its input items), for the key that made
    it, on a role whose store is on; before the role's catch-all /v1 route. An id the
    store does not know goes to `behind` (the catch-all's relay) where a hop behind may
    know it, else is a 404. Without the store they are relayed like any /v1 path."""
    if keys.RESPONSES not in app:
        return
    r = app.router
    r.add_get(PATH + "/{id}", _stored(retrieve, owner, behind))
    r.add_delete(PATH + "/{id}", _stored(delete, owner, behind))
    r.add_get(PATH + "/{id}/input_items", _stored(input_items, owner, behind))
