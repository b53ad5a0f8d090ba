"""The outbox on Redis (outbox.py says how exactly-once holds): every worker and instance sends from it, and a
delivery outlives the process that added it.

Keys, under the store's prefix P:
    P outbox:<id>   a hash: data (the Delivery as JSON, without its counters), status, attempts, error
    P outbox-due    zset: pending delivery id -> when it may be sent next (ms, Redis's own clock)
Each step is one Lua script, so adding, claiming and settling are atomic across processes. A Redis error is the
store's StoreUnavailable, logged once per outage (stores/redis.py, Outage).
"""

from __future__ import annotations

import json

import redis

from outbox import CLAIM_S, DONE_TTL_S, PENDING, Delivery
from stores.redis import Outage

# ARGV: prefix, id, data, ttl_s. 1 = added, 0 = already known.
ADD = """
local item = ARGV[1] .. 'outbox:' .. ARGV[2]
if redis.call('EXISTS', item) == 1 then return 0 end
redis.call('HSET', item, 'data', ARGV[3], 'status', 'pending', 'attempts', 0)
redis.call('EXPIRE', item, ARGV[4])
local t = redis.call('TIME')
redis.call('ZADD', ARGV[1] .. 'outbox-due', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[2])
return 1
"""

# ARGV: prefix, claim_ms. The first due id with its hash fields, its attempt counted; nil when none is due.
CLAIM = """
local due = ARGV[1] .. 'outbox-due'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, 1)[1]
if not first then return nil end
local item = ARGV[1] .. 'outbox:' .. first
if redis.call('EXISTS', item) == 0 then
  redis.call('ZREM', due, first)
  return nil
end
redis.call('ZADD', due, now + tonumber(ARGV[2]), first)
local attempts = redis.call('HINCRBY', item, 'attempts', 1)
return {first, redis.call('HGET', item, 'data'), attempts}
"""

# ARGV: prefix, id, status, error, retry_in_ms (-1: settled for good).
SETTLE = """
local item = ARGV[1] .. 'outbox:' .. ARGV[2]
redis.call('HSET', item, 'status', ARGV[3], 'error', ARGV[4])
if tonumber(ARGV[5]) >= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', ARGV[1] .. 'outbox-due', now + tonumber(ARGV[5]), ARGV[2])
else
  redis.call('ZREM', ARGV[1] .. 'outbox-due', ARGV[2])
end
return 1
"""


class RedisOutbox:
    """Outbox on the store's Redis. Times are Redis's clock; `now` arguments only serve the retry's delay."""

    def __init__(self, client: redis.Redis, prefix: str, outage: Outage, claim_s: float = CLAIM_S):
        self.redis, self.prefix, self.outage, self.claim_s = client, prefix, outage, claim_s
        self._add = client.register_script(ADD)
        self._claim = client.register_script(CLAIM)
        self._settle = client.register_script(SETTLE)

    def add(self, delivery: Delivery, now: float) -> bool:
        data = json.dumps({"id": delivery.id, "channel": delivery.channel, "to": delivery.to,
                           "message": delivery.message})
        with self.outage.guard():  # StoreUnavailable: the event that took the message runs again, adding it once
            return bool(self._add(args=[self.prefix, delivery.id, data, DONE_TTL_S]))

    def claim(self, now: float) -> Delivery | None:
        with self.outage.guard():
            found = self._claim(args=[self.prefix, int(self.claim_s * 1000)])
        if not found:
            return None
        _, data, attempts = found
        return Delivery(**json.loads(data), attempts=int(attempts))

    def settle(self, delivery: Delivery, now: float, retry_at: float | None = None) -> None:
        retry_in_ms = -1 if retry_at is None or delivery.status != PENDING else max(0, int((retry_at - now) * 1000))
        with self.outage.guard():  # StoreUnavailable: the claim lapses and the delivery is sent again, same id
            self._settle(args=[self.prefix, delivery.id, delivery.status, delivery.error or "", retry_in_ms])

    def status(self, delivery_id: str) -> str | None:
        with self.outage.guard():
            value = self.redis.hget(f"{self.prefix}outbox:{delivery_id}", "status")
        return value.decode() if isinstance(value, bytes) else value

