"""The Lua scripts behind stores/redis.py: each one step of the protocol, atomic on the Redis server.

Keys, under the configured prefix P (a standalone Redis or Valkey; scripts name keys they build, so not
Redis Cluster):
    P call:<id>    the call's state (JSON)              P inbox:<id>   its queued events (list, oldest first)
    P ended:<id>   tombstone of an ended call            P lease:<id>   who runs the call's events now
    P seen:<id>    a webhook id already taken            P ready        zset: call id -> when to look at it
    P timers       zset: "<n>:<call id><event>" -> due   P live         zset: call id -> started_at
    P claims       a counter that makes every lease token unique
    P tries:<id>   claims of the call since its first queued event was last committed
    P shared:<name>  the operator's values (stores/redis.py, RedisShared; no script touches them)
Times are whole milliseconds of the Redis server's own clock (TIME), so the clocks of the machines never
matter, and a score is exact (Lua hands numbers to Redis with 14 significant digits).
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function deliver(prefix, cid, event, now, inbox_ttl_ms)
  local inbox = prefix .. 'inbox:' .. cid
  redis.call('RPUSH', inbox, event)
  redis.call('PEXPIRE', inbox, inbox_ttl_ms)
  redis.call('ZADD', prefix .. 'ready', 'NX', now, cid)
end
local function fire(prefix, member, now, inbox_ttl_ms)
  if redis.call('ZREM', prefix .. 'timers', member) == 0 then return 0 end
  local colon = string.find(member, ':', 1, true)
  local n = tonumber(string.sub(member, 1, colon - 1))
  deliver(prefix, string.sub(member, colon + 1, colon + n), string.sub(member, colon + n + 1), now, inbox_ttl_ms)
  return 1
end
"""

# ARGV: prefix, event_id, call id, event, seen_ttl_ms, inbox_ttl_ms. 1 = queued, 0 = a redelivery.
ACCEPT = _COMMON + """
if not redis.call('SET', ARGV[1] .. 'seen:' .. ARGV[2], '1', 'NX', 'PX', ARGV[5]) then return 0 end
deliver(ARGV[1], ARGV[3], ARGV[4], now_ms(), ARGV[6])
return 1
"""

# ARGV: prefix, timer member, inbox_ttl_ms. 1 = moved to its call's inbox, 0 = already fired elsewhere.
FIRE = _COMMON + """
return fire(ARGV[1], ARGV[2], now_ms(), ARGV[3])
"""

# ARGV: prefix, owner, lease_ms, wanted, inbox_ttl_ms, max_claims. Fires the due timers, then leases up to
# `wanted` calls whose turn has come (new work, or a lease that lapsed). A lease's value is `owner` and the
# call's own claim number, so a later claim of the same call, even by the same process, never shares its token.
# A call claimed max_claims times without its first event ever being committed has that event dropped (every
# process that ran it died or stalled: a poison event), and the claim goes on with the next one.
# Returns {{call id, token, first event, state, ended, ...}, {call id, dropped event, ...}}: with each claimed call
# what its holder reads first (the state as last committed, or nil; 1 when its tombstone is there), so running
# it starts without another round trip.
CLAIMED_FIELDS = 5  # per claimed call in CLAIM's first list
CLAIM = _COMMON + f"local CLAIMED_FIELDS = {CLAIMED_FIELDS}\n" + """
local prefix, owner, lease_ms, wanted = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local max_claims = tonumber(ARGV[6])
local now = now_ms()
for _, member in ipairs(redis.call('ZRANGEBYSCORE', prefix .. 'timers', '-inf', now, 'LIMIT', 0, 200)) do
  fire(prefix, member, now, ARGV[5])
end
local claimed, dropped = {}, {}
if wanted < 1 then return {claimed, dropped} end
for _, cid in ipairs(redis.call('ZRANGEBYSCORE', prefix .. 'ready', '-inf', now, 'LIMIT', 0, wanted * 2 + 8)) do
  local lease, tries, inbox = prefix .. 'lease:' .. cid, prefix .. 'tries:' .. cid, prefix .. 'inbox:' .. cid
  local token = owner .. '#' .. redis.call('INCR', prefix .. 'claims')
  if redis.call('SET', lease, token, 'NX', 'PX', lease_ms) then
    if redis.call('INCR', tries) > max_claims then
      dropped[#dropped + 1] = cid
      dropped[#dropped + 1] = redis.call('LPOP', inbox) or ''
      redis.call('SET', tries, 1)
    end
    redis.call('PEXPIRE', tries, ARGV[5])
    if redis.call('LLEN', inbox) == 0 then
      redis.call('DEL', lease, tries)
      redis.call('ZREM', prefix .. 'ready', cid)
    else
      redis.call('ZADD', prefix .. 'ready', now + lease_ms, cid)
      local n = #claimed
      claimed[n + 1] = cid
      claimed[n + 2] = token
      claimed[n + 3] = redis.call('LINDEX', inbox, 0)
      claimed[n + 4] = redis.call('GET', prefix .. 'call:' .. cid)
      claimed[n + 5] = redis.call('EXISTS', prefix .. 'ended:' .. cid)
      if #claimed >= CLAIMED_FIELDS * wanted then break end
    end
  else
    redis.call('ZADD', prefix .. 'ready', now + math.max(redis.call('PTTL', lease), 1), cid)
  end
end
return {claimed, dropped}
"""

# ARGV: prefix, call id, lease token, lease_ms, op (save|close|none), state, state_ttl_ms, ended_ttl_ms, started_at,
# hand_back (1|0), the call's expiry timer (dropped on close), then (delay_ms, timer member) pairs.
# Only the lease holder may commit: {-1} otherwise.
# Writes what the event left behind, drops the event from the inbox, and either keeps the lease, returning
# {events left, next event}, or gives it up ({0}) when the inbox is empty or the holder hands the call back.
COMMIT = _COMMON + """
local prefix, cid, token, lease_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local lease, inbox = prefix .. 'lease:' .. cid, prefix .. 'inbox:' .. cid
if redis.call('GET', lease) ~= token then return {-1} end
if ARGV[5] == 'save' then
  redis.call('SET', prefix .. 'call:' .. cid, ARGV[6], 'PX', ARGV[7])
  redis.call('ZADD', prefix .. 'live', ARGV[9], cid)
elseif ARGV[5] == 'close' then
  redis.call('DEL', prefix .. 'call:' .. cid)
  redis.call('SET', prefix .. 'ended:' .. cid, '1', 'PX', ARGV[8])
  redis.call('ZREM', prefix .. 'live', cid)
  redis.call('ZREM', prefix .. 'timers', ARGV[11])
end
local now = now_ms()
for i = 12, #ARGV, 2 do
  redis.call('ZADD', prefix .. 'timers', now + tonumber(ARGV[i]), ARGV[i + 1])
end
redis.call('LPOP', inbox)
redis.call('DEL', prefix .. 'tries:' .. cid)
local left = redis.call('LLEN', inbox)
if left == 0 or ARGV[10] == '1' then
  redis.call('DEL', lease)
  if left == 0 then redis.call('ZREM', prefix .. 'ready', cid) else redis.call('ZADD', prefix .. 'ready', now, cid) end
  return {0}
end
redis.call('PEXPIRE', lease, lease_ms)
redis.call('ZADD', prefix .. 'ready', now + lease_ms, cid)
return {left, redis.call('LINDEX', inbox, 0)}
"""

# ARGV: prefix, lease_ms, then (call id, lease token) pairs. Extends those leases; returns the ids no longer held.
RENEW = _COMMON + """
local prefix, lease_ms = ARGV[1], tonumber(ARGV[2])
local now, lost = now_ms(), {}
for i = 3, #ARGV, 2 do
  local lease = prefix .. 'lease:' .. ARGV[i]
  if redis.call('GET', lease) == ARGV[i + 1] then
    redis.call('PEXPIRE', lease, lease_ms)
    redis.call('ZADD', prefix .. 'ready', 'XX', now + lease_ms, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

# ARGV: prefix, call id, lease token. Gives a lease up; events still queued become anyone's at once.
RELEASE = _COMMON + """
local prefix, cid = ARGV[1], ARGV[2]
local lease = prefix .. 'lease:' .. cid
if redis.call('GET', lease) ~= ARGV[3] then return 0 end
redis.call('DEL', lease)
if redis.call('LLEN', prefix .. 'inbox:' .. cid) == 0 then
  redis.call('ZREM', prefix .. 'ready', cid)
else
  redis.call('ZADD', prefix .. 'ready', now_ms(), cid)
end
return 1
"""
