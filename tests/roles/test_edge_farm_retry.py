"""The farm's shared rate limit when a reply from Redis is lost: the script ran, the edge
did not hear it, and the edge retries the call (Farm._shared's one retry). The request
must be counted once and decided as on the first try.

Between the edge and a real redis-server sits a loopback proxy that, when armed, passes a
script call on to Redis, swallows Redis's reply and closes the edge's connection."""

from __future__ import annotations

import asyncio
import contextlib

from eldric.roles.edge.clients import RedisClients
from eldric.roles.edge.farm import Farm
from eldric.roles.edge.limits import Decision, RedisLimiter, Tier

WINDOW_MS = 60_000


class LosingProxy:
    """TCP on 127.0.0.1 to Redis. `lose` script replies are lost: the command reaches
    Redis and runs; its reply is read and dropped, and the client's connection closed."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.lose = 0
        self.lost = 0
        self.scripts = 0  # script calls that reached Redis through here
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        losing = asyncio.Event()  # the next reply from Redis is the script's: lose it

        async def replies() -> None:
            while data := await up_reader.read(65536):
                if losing.is_set():
                    self.lost += 1
                    return  # it ran in Redis; the edge never hears so
                writer.write(data)
                await writer.drain()

        relay = asyncio.ensure_future(replies())
        try:
            while not relay.done() and (data := await _read_or(reader, relay)):
                if b"EVALSHA" in data.upper():
                    self.scripts += 1
                    if self.lose:
                        self.lose -= 1
                        losing.set()
                up_writer.write(data)
                await up_writer.drain()
        except ConnectionError:
            pass
        finally:  # either side ended: end both
            relay.cancel()
            writer.close()
            up_writer.close()

    async def close(self) -> None:
        """Once the clients closed their connections: every handler ends on its own."""
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(asyncio.gather(*self.handlers), 5)
        await self.server.wait_closed()


async def _read_or(reader: asyncio.StreamReader, done: asyncio.Future) -> bytes:
    """The client's next bytes, or b"" once `done` (the reply side) has ended."""
    read = asyncio.ensure_future(reader.read(65536))
    await asyncio.wait([read, done], return_when=asyncio.FIRST_COMPLETED)
    if read.done():
        return read.result()
    read.cancel()
    return b""


@contextlib.asynccontextmanager
async def farm_through(redis_url: str):
    """A Farm as the edge builds it, its Redis client behind a LosingProxy."""
    import redis.asyncio as aioredis

    proxy = LosingProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    r = aioredis.from_url(await proxy.start())
    direct = aioredis.from_url(redis_url)
    limiter = RedisLimiter(r, WINDOW_MS)
    farm = Farm(RedisClients(r, {}), limiter, WINDOW_MS, shared=True)
    await farm.check([Tier("global", "warm-up", 1000)])  # the script is loaded now
    proxy.scripts = 0
    try:
        yield farm, proxy, direct
    finally:
        await r.aclose()
        await direct.aclose()
        await proxy.close()


async def _entries(direct, tier: Tier) -> int:  # type: ignore[no-untyped-def]
    return await direct.zcard(RedisLimiter.PREFIX + tier.key)


async def _lost_after_one(farm: Farm, proxy: LosingProxy, tier: Tier) -> Decision:
    """One request counted as usual, then one whose first try's reply is lost."""
    assert (await farm.check([tier])).allowed
    proxy.lose = 1
    decision = await farm.check([tier])
    assert proxy.lost == 1
    return decision


async def test_a_lost_reply_counts_the_request_once(redis_url):
    async with farm_through(redis_url) as (farm, proxy, direct):
        tiers = [Tier("ip", "ip:10.0.0.7", 5), Tier("global", "global", 100)]
        proxy.lose = 1
        decision = await farm.check(tiers)
        assert proxy.lost == 1 and proxy.scripts == 2  # lost, then retried
        assert decision.allowed and not farm.degraded
        assert [await _entries(direct, t) for t in tiers] == [1, 1]
        assert (decision.tier, decision.remaining) == ("ip", 4)  # as the first try said


async def test_a_lost_reply_does_not_refuse_the_request_it_counted(redis_url):
    """The last free slot: the first try took it; the retry must not see it as taken by
    someone else."""
    async with farm_through(redis_url) as (farm, proxy, direct):
        tier = Tier("key", "key:k1", 2)
        decision = await _lost_after_one(farm, proxy, tier)
        assert decision.allowed and decision.remaining == 0
        assert await _entries(direct, tier) == 2
        refused = await farm.check([tier])  # the window is full now, for real
        assert not refused.allowed and refused.retry_after > 0
        assert await _entries(direct, tier) == 2


async def test_a_refusal_whose_reply_was_lost_is_a_refusal_again(redis_url):
    async with farm_through(redis_url) as (farm, proxy, direct):
        tier = Tier("ip", "ip:10.0.0.8", 1)
        decision = await _lost_after_one(farm, proxy, tier)
        assert not decision.allowed and decision.tier == "ip"
        assert await _entries(direct, tier) == 1
