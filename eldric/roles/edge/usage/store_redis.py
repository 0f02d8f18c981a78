"""Usage buckets in the farm's Redis, so every edge adds to one total.

One hash per UTC day (`eldric:usage:<day>`), one field per bucket and counter
(`["client","model","backend"]|prompt_tokens`), added to with HINCRBY / HINCRBYFLOAT;
drops per day in `eldric:usage:dropped`. A flush is one Lua script per chunk of buckets
(atomic: all of the chunk or none), which first claims the chunk's id (SET NX, kept an
hour: a refused batch is sent again every flush interval): a chunk whose reply was lost
and is sent again is not added twice. The days' hashes are kept (the history). A read is one
HGETALL per day of the range, pipelined.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

import msgspec

from eldric.roles.edge.usage.counts import FIELDS, Counts, Key
from eldric.roles.edge.usage.store import Batch

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "eldric:usage:"
DROPPED = PREFIX + "dropped"
BATCH_TTL = 3600  # seconds a flushed chunk's id is remembered
CHUNK = 500  # buckets per script: bounded arguments, a short hold on Redis
TIMEOUT = 10.0  # seconds: a Redis that stopped answering fails the flush (kept, retried)

# KEYS[1]: the chunk's id; KEYS[2..]: the hashes. ARGV[1]: how long ids are kept (s);
# then per increment: the hash's index in KEYS, the field, "f" (float) or "i", the amount.
_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 2, #ARGV, 4 do
  local key = KEYS[tonumber(ARGV[i])]
  if ARGV[i + 2] == 'f' then
    redis.call('HINCRBYFLOAT', key, ARGV[i + 1], ARGV[i + 3])
  else
    redis.call('HINCRBY', key, ARGV[i + 1], ARGV[i + 3])
  end
end
return 1
"""

_enc = msgspec.json.Encoder()
_names = msgspec.json.Decoder(tuple[str, str, str])


def days(first: str, last: str) -> list[str]:
    d, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    out = []
    while d <= end:
        out.append(d.isoformat())
        d += dt.timedelta(days=1)
    return out


class RedisUsage:
    def __init__(self, redis: Redis, timeout: float = TIMEOUT) -> None:
        self.redis = redis
        self.timeout = timeout
        self.script = redis.register_script(_ADD)

    async def open(self) -> None:
        return None  # the edge's client store pings Redis; an outage is the Recorder's

    async def close(self) -> None:
        return None  # the connection is the edge's (closed with its client store)

    async def add(self, batch: Batch) -> None:
        items = list(batch.buckets.items())
        for n, start in enumerate(range(0, max(len(items), 1), CHUNK)):
            keys = [f"{PREFIX}batch:{batch.id}:{n}"]
            args: list[str | int | float] = [BATCH_TTL]

            def hash_index(name: str) -> int:
                if name not in keys:
                    keys.append(name)
                return keys.index(name) + 1

            for (day, client, model, backend), counts in items[start:start + CHUNK]:
                at, who = hash_index(PREFIX + day), _enc.encode([client, model, backend]).decode()
                for f, v in zip(FIELDS, counts.values()):
                    if v:
                        args += [at, f"{who}|{f}", "f" if f == "cost" else "i", repr(v)]
            if n == 0:
                for day, dropped in batch.dropped.items():
                    args += [hash_index(DROPPED), day, "i", dropped]
            await asyncio.wait_for(self.script(keys=keys, args=args), self.timeout)

    async def buckets(self, first: str, last: str, client: str | None,
                      model: str | None) -> list[tuple[Key, Counts]]:
        wanted = days(first, last)
        async with self.redis.pipeline(transaction=False) as p:
            for day in wanted:
                p.hgetall(PREFIX + day)
            hashes = await asyncio.wait_for(p.execute(), self.timeout)
        out: list[tuple[Key, Counts]] = []
        for day, fields in zip(wanted, hashes):
            found: dict[Key, Counts] = {}
            for raw, value in fields.items():
                who, _, f = raw.decode().rpartition("|")
                c, m, b = _names.decode(who)
                if (client is not None and c != client) or (model is not None and m != model):
                    continue
                counts = found.setdefault((day, c, m, b), Counts())
                setattr(counts, f, float(value) if f == "cost" else int(value))
            out.extend(found.items())
        return out

    async def dropped(self, first: str, last: str) -> int:
        wanted = days(first, last)
        values = await asyncio.wait_for(self.redis.hmget(DROPPED, wanted), self.timeout)
        return sum(int(v) for v in values if v is not None)
