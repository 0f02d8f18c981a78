"""GET /api/v1/usage (the totals) and GET /api/v1/usage/requests (the request log).

/api/v1/usage?client=&model=&from=&to=&group_by=day|model|client|backend (a comma list
groups by several): the admin key sees every client, a client's own key only its own
(another client's name is a 403). JSON by default, CSV with `Accept: text/csv`. Days are
UTC; `from` / `to` take a day (2026-12-01) or an ISO date-time (its UTC day), both
inclusive; by default the 30 days up to today. What the edge counted but has not written
yet is included, so a reader sees its last request at once. Any other parameter, or a
bad value, is a 400 naming it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable

from aiohttp import web

from eldric.auth import key_matches, presented_key
from eldric.bus.routes import json_response
from eldric.errors import BadRequest, EldricError, NotFound, UpstreamUnavailable
from eldric.roles.edge.handlers import NO_ADMIN, _require_admin
from eldric.roles.edge.state import EDGE, EdgeState
from eldric.roles.edge.usage.counts import KEY_COLUMNS, Counts, grouped
from eldric.roles.edge.usage.store import Recorder

DEFAULT_DAYS = 30
MAX_DAYS = 732  # two years a query: a bounded read (farm mode reads one hash per day)
USAGE_PARAMS = ("client", "model", "from", "to", "group_by")
REQUEST_PARAMS = ("client", "model", "from", "to", "limit")
MAX_LIMIT = 1000


class Forbidden(EldricError):
    status = 403
    code = "forbidden_client"


def _only(request: web.Request, allowed: Iterable[str]) -> None:
    for name in request.query:
        if name not in allowed:
            raise BadRequest(f"unknown parameter {name!r} (expected one of "
                             f"{', '.join(allowed)})", param=name)


def _text(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1 or not values[0].strip():
        raise BadRequest(f"{name} must be given once, not empty", param=name)
    return values[0]


def _when(request: web.Request, name: str) -> dt.datetime | None:
    """A day (midnight UTC) or an ISO date-time (UTC if it names no zone)."""
    text = _text(request, name)
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        when = when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when
        # in UTC now, and a day either side still a date: year 1 and 9999 are no 500
        when = when.astimezone(dt.timezone.utc)
        if not dt.date(1, 2, 1) <= when.date() <= dt.date(9999, 11, 30):
            raise ValueError
    except (ValueError, OverflowError):
        raise BadRequest(f"{name} must be a day (2026-12-01) or an ISO date-time "
                         f"(years 1 to 9999), not {text!r}", param=name) from None
    return when


def _days(request: web.Request) -> tuple[str, str]:
    first_t, last_t = _when(request, "from"), _when(request, "to")
    last = last_t.date() if last_t is not None else dt.datetime.now(dt.timezone.utc).date()
    first = (first_t.date() if first_t is not None
             else last - dt.timedelta(days=DEFAULT_DAYS - 1))  # _when keeps it a date
    if first > last:
        raise BadRequest(f"from ({first}) is after to ({last})", param="from")
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(f"from..to spans more than {MAX_DAYS} days", param="from")
    return first.isoformat(), last.isoformat()


def _group_by(request: web.Request) -> tuple[str, ...]:
    text = _text(request, "group_by") or "day"
    by = tuple(c.strip() for c in text.split(","))
    for c in by:
        if c not in KEY_COLUMNS:
            raise BadRequest(f"group_by: {c!r} is not one of {', '.join(KEY_COLUMNS)}",
                             param="group_by")
    if len(set(by)) != len(by):
        raise BadRequest("group_by names a column twice", param="group_by")
    return by


async def whose(request: web.Request, es: EdgeState) -> str | None:
    """The client a client's key is (it sees only its own usage); None for the admin
    (every client's), as _require_admin knows it; else its 401."""
    key = presented_key(request)
    if key is not None and not key_matches(key, es.cfg.admin_key or NO_ADMIN):
        client = await es.farm.lookup(key)
        if client is not None:
            return client.name
    _require_admin(request, es)
    return None


def _recorder(es: EdgeState) -> Recorder:
    if es.recorder is None:
        raise NotFound("usage counting is off on this edge (--usage off)", code="usage_off")
    return es.recorder


async def usage(request: web.Request) -> web.Response:
    es = request.app[EDGE]
    recorder = _recorder(es)
    _only(request, USAGE_PARAMS)
    own = await whose(request, es)
    client, model = _text(request, "client"), _text(request, "model")
    if own is not None:
        if client is not None and client != own:
            raise Forbidden(f"this key is client {own!r}: it sees only its own usage",
                            param="client")
        client = own
    first, last = _days(request)
    by = _group_by(request)
    async with recorder.lock:  # a flush in between would count its batch twice
        try:
            buckets = await recorder.store.buckets(first, last, client, model)
            dropped = await recorder.store.dropped(first, last)
        except Exception as exc:  # the store is down: say so, do not guess
            raise UpstreamUnavailable(f"the usage store cannot be read ({type(exc).__name__}: "
                                      f"{exc})", code="store_unavailable") from None
        buckets += recorder.waiting(first, last, client, model)
        dropped += recorder.waiting_dropped(first, last)
    rows = sorted(grouped(buckets, by).items())
    if "text/csv" in request.headers.get("Accept", ""):
        return _csv(by, rows)
    totals = Counts()
    for _, counts in rows:
        totals.merge(counts)
    unpriced = sorted({k[2] for k, c in buckets if c.unpriced_requests})
    return json_response({
        "from": first, "to": last, "group_by": ",".join(by),
        "rows": [{**dict(zip(by, key)), **counts.public()} for key, counts in rows],
        "totals": totals.public(), "unpriced_models": unpriced, "dropped": dropped})


def _csv(by: tuple[str, ...], rows: list[tuple[tuple, Counts]]) -> web.Response:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    counters = list(Counts().public())
    w.writerow([*by, *counters])
    for key, counts in rows:
        public = counts.public()
        w.writerow([*map(_cell, key), *("" if public[c] is None else public[c]
                                         for c in counters)])
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """A name as a spreadsheet shows it, never as a formula it runs: model names are the
    clients' own ('=HYPERLINK(…)'), and an admin opens this file in one (OWASP's rule:
    a leading ' before =, +, -, @, tab, CR). The csv module quotes commas and quotes."""
    return "'" + text if text.startswith(_FORMULA) else text


async def requests(request: web.Request) -> web.Response:
    """GET /api/v1/usage/requests?client=&model=&from=&to=&limit= (admin): the request
    log's rows, newest first (at most `limit`, 100 by default, 1000 at most)."""
    es = request.app[EDGE]
    _require_admin(request, es)
    recorder = _recorder(es)
    if recorder.requests is None:
        raise NotFound("the request log is off (start the edge with --request-log sqlite)",
                       code="request_log_off")
    _only(request, REQUEST_PARAMS)
    first_t, last_t = _when(request, "from"), _when(request, "to")
    if last_t is not None and len(request.query["to"].strip()) == 10:
        last_t += dt.timedelta(days=1)  # a day: all of it
    text = _text(request, "limit") or "100"
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1 to {MAX_LIMIT}", param="limit")  # ('²' is a
        # digit to isdigit(), not to int())
    since = first_t.timestamp() if first_t is not None else 0.0
    until = last_t.timestamp() if last_t is not None else float("inf")
    if since > until:
        raise BadRequest("from is after to", param="from")
    log = recorder.requests
    await log.flush()  # what waits is written first: a reader sees its last request
    try:
        rows = await log.rows(since=since, until=until, client=_text(request, "client"),
                              model=_text(request, "model"), limit=int(text))
    except Exception as exc:
        raise UpstreamUnavailable(f"the request log cannot be read ({type(exc).__name__}: "
                                  f"{exc})", code="store_unavailable") from None
    return json_response({"requests": rows, "dropped": log.dropped})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/usage", usage)
    app.router.add_get("/api/v1/usage/requests", requests)
