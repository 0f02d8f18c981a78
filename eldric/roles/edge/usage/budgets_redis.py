"""Budgets in the farm's Redis: one Lua script per reserve and per settle, so N edges
share one exact budget (like limits.py's rate-limit windows).

Per client: its tpm window (a sorted set of reservations by Redis's clock, their tokens
in a hash, their sum in a counter: a check costs the entries leaving the window, not the
whole window), and counters of tokens per UTC day and cost per UTC day and month (keyed
by the edge's calendar date; they expire after their period). A reservation is one
member, named once per request, with a hold hash saying what it took: reserve run again
after its reply was lost takes nothing twice, settle run again corrects nothing twice.
A hold never settled (its edge died) keeps its reservation counted until it expires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eldric.roles.edge.usage.caps import Caps, Period, Verdict

if TYPE_CHECKING:  # farm mode only: redis is an optional dependency
    from redis.asyncio import Redis

# KEYS: window zset, window tokens hash, window sum, tokens of the day, cost of the day,
# cost of the month, the hold. ARGV: window ms, member, tokens, cost ("" unpriced), then
# the limits tpm, tokens/day, cost/day, cost/month ("" none), then the TTLs (s) of the
# day's keys, the month's and the hold's. Returns {allowed, refused index, tpm retry ms,
# used tpm, used tokens/day, used cost/day, used cost/month} (floats as strings: Lua
# numbers would be truncated to integers in the reply).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
while true do
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window, 'LIMIT', 0, 500)
  if #old == 0 then break end
  local gone = 0
  for _, v in ipairs(redis.call('HMGET', KEYS[2], unpack(old))) do gone = gone + (tonumber(v) or 0) end
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('DECRBY', KEYS[3], gone)
end
local used = {tonumber(redis.call('GET', KEYS[3]) or '0'), tonumber(redis.call('GET', KEYS[4]) or '0'),
              tonumber(redis.call('GET', KEYS[5]) or '0'), tonumber(redis.call('GET', KEYS[6]) or '0')}
local function answer(ok, index, retry)
  return {ok, index, retry, tostring(used[1]), tostring(used[2]), tostring(used[3]), tostring(used[4])}
end
if redis.call('EXISTS', KEYS[7]) == 1 then return answer(1, 0, 0) end
local priced = ARGV[4] ~= ''
for i = 1, 4 do
  local limit = ARGV[4 + i]
  if limit ~= '' and (i <= 2 or priced) and used[i] >= tonumber(limit) then
    local retry = 0
    if i == 1 then
      local left = used[1]
      local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        left = left - (tonumber(redis.call('HGET', KEYS[2], entries[j])) or 0)
        if left < tonumber(limit) then retry = tonumber(entries[j + 1]) + window - now break end
      end
    end
    return answer(0, i, retry)
  end
end
local tokens = tonumber(ARGV[3])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], tokens)
  redis.call('INCRBY', KEYS[3], tokens)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], window) end
  used[1] = used[1] + tokens
end
redis.call('INCRBY', KEYS[4], tokens)
redis.call('EXPIRE', KEYS[4], ARGV[9])
used[2] = used[2] + tokens
if priced then
  local cost = tonumber(ARGV[4])
  redis.call('INCRBYFLOAT', KEYS[5], ARGV[4])
  redis.call('EXPIRE', KEYS[5], ARGV[9])
  redis.call('INCRBYFLOAT', KEYS[6], ARGV[4])
  redis.call('EXPIRE', KEYS[6], ARGV[10])
  used[3] = used[3] + cost
  used[4] = used[4] + cost
end
redis.call('HSET', KEYS[7], 'tokens', tokens, 'cost', ARGV[4])
redis.call('EXPIRE', KEYS[7], ARGV[11])
return answer(1, 0, 0)
"""

# KEYS: as _RESERVE's. ARGV: member, tokens used, cost ("" unpriced). A counter whose
# period ended (expired) is not brought back by a late correction.
_SETTLE = """
local held = redis.call('HMGET', KEYS[7], 'tokens', 'cost')
if not held[1] then return 0 end
redis.call('DEL', KEYS[7])
local delta = tonumber(ARGV[2]) - tonumber(held[1])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[1], delta)
  redis.call('INCRBY', KEYS[3], delta)
end
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('INCRBY', KEYS[4], delta) end
if held[2] ~= '' and ARGV[3] ~= '' then
  local d = tostring(tonumber(ARGV[3]) - tonumber(held[2]))
  if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('INCRBYFLOAT', KEYS[5], d) end
  if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('INCRBYFLOAT', KEYS[6], d) end
end
return 1
"""

_KINDS = ("tpm", "tokens_per_day", "cost_per_day", "cost_per_month")
DAY_TTL = 2 * 86400  # a day's counters outlive the day a little (late settles, skew)
MONTH_TTL = 32 * 86400
HOLD_TTL = 86400  # a reply longer than a day is no reply


def _keys(client: str, member: str, day: str, month: str) -> list[str]:
    base = f"eldric:budget:{client}:"
    return [base + "win", base + "win:tokens", base + "win:sum", f"{base}tokens:{day}",
            f"{base}cost:{day}", f"{base}cost:{month}", f"eldric:budget:hold:{member}"]


def _arg(value: float | None) -> str:
    return "" if value is None else repr(value)


class RedisBudgets:
    def __init__(self, redis: Redis, window_ms: int) -> None:
        self.redis = redis
        self.window_ms = window_ms
        self.reserve_script = redis.register_script(_RESERVE)
        self.settle_script = redis.register_script(_SETTLE)

    async def reserve(self, client: str, caps: Caps, tokens: int, cost: float | None,
                      period: Period, member: str) -> Verdict:
        limits = caps.limits()
        reply = await self.reserve_script(
            keys=_keys(client, member, period.day, period.month),
            args=[self.window_ms, member, tokens, _arg(cost),
                  *(_arg(limits[k]) for k in _KINDS), DAY_TTL, MONTH_TTL, HOLD_TTL])
        ok, index, retry_ms, *raw = reply
        used = {k: float(v) for k, v in zip(_KINDS, raw)}
        refused = None if ok else _KINDS[int(index) - 1]
        return caps.verdict(used, refused, max(0.0, float(retry_ms) / 1000))

    async def settle(self, client: str, member: str, day: str, month: str, tokens: int,
                     cost: float | None) -> None:
        await self.settle_script(keys=_keys(client, member, day, month),
                                 args=[member, tokens, _arg(cost)])

    async def spent(self, clients: list[str], period: Period) -> dict[str, tuple[int, float, float]]:
        """Each client's tokens today, cost today and cost this month, as counted here."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in clients:
                pipe.mget(_keys(name, "", period.day, period.month)[3:6])
            got = await pipe.execute()
        return {name: (int(t or 0), float(cd or 0), float(cm or 0))
                for name, (t, cd, cm) in zip(clients, got)}
