"""Lua scripts of the ready stream: settle, dead-letter, reclaim, heartbeat and prune, each atomic."""

from __future__ import annotations

#: Lua helper: adds {id, body, delivery count} of a claimed ``entry`` to ``out``; the body is
#: false (nil to the client) for an entry without a ``data`` field, which the worker dead-letters.
#: An entry deleted meanwhile (nil on Redis < 7, with no fields on 6.2's XAUTOCLAIM) is dropped.
_COLLECT = """
local function collect(ready, group, entry, count, out)
  if not entry then return end
  local fields, body = entry[2], false
  if not fields then
    redis.call('XACK', ready, group, entry[1])
    return
  end
  for i = 1, #fields, 2 do
    if fields[i] == 'data' then body = fields[i + 1] end
  end
  out[#out + 1] = {entry[1], body, count}
end
"""

#: Lua helper: Redis server time in ms, and the instant Redis last came back from a silence (no
#: heartbeat script run for over ``silence`` ms: Redis stopped, stalled, or every worker was gone).
#: Records the call in the ``clock`` hash.
_CLOCK = """
local function observe(clock, silence)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = redis.call('HMGET', clock, 'seen', 'resumed')
  local seen, resumed = tonumber(last[1]), tonumber(last[2])
  if not seen or not resumed or now - seen > tonumber(silence) then resumed = now end
  redis.call('HSET', clock, 'seen', now, 'resumed', resumed)
  return now, resumed
end
"""

#: KEYS: ready. ARGV: body... Appends each body to the ready stream, in order.
PUBLISH = """
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'data', ARGV[i])
end
return #ARGV
"""

#: KEYS: ready. ARGV: group, id... Acknowledge and delete, so acked entries never pile up.
ACK = """
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return n
"""

#: KEYS: ready, dead. ARGV: group, id, body, reason, attempt, dead-letter max length.
DEAD_LETTER = """
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
  'data', ARGV[3], 'reason', ARGV[4], 'attempt', ARGV[5], 'id', ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

#: KEYS: ready. ARGV: group, consumer, min idle (ms), cursor, count.
#: Claims entries idle for longer than ``min idle`` (their worker died) and returns
#: {next cursor, {{id, body or false, delivery count}...}}.
RECLAIM = (
    _COLLECT
    + """
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  'COUNT', ARGV[5])
local out = {}
for _, entry in ipairs(res[2]) do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
  local count = 1
  if pending[1] then count = pending[1][4] end
  collect(KEYS[1], ARGV[1], entry, count, out)
end
return {res[1], out}
"""
)

#: KEYS: heartbeats, clock. ARGV: consumer, lifetime (ms), silence (ms).
#: Sets the consumer's deadline to server time + lifetime (a negative lifetime: dead now).
HEARTBEAT = (
    _CLOCK
    + """
local now = observe(KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return now
"""
)

#: KEYS: ready, heartbeats, clock. ARGV: group, consumer, count, silence (ms), settle (ms).
#: Claims up to ``count`` pending entries of consumers whose heartbeat deadline has passed, and
#: deletes those left holding nothing from the group and the heartbeats. Does nothing unless the
#: caller's own heartbeat is fresh and Redis has not been silent for ``settle`` ms (after an
#: outage or a stall, every live consumer first gets the time to beat again).
#: Returns {{{id, body or false, delivery count}...}, {deleted consumer...}}.
CLAIM_DEAD = (
    _COLLECT
    + _CLOCK
    + """
local now, resumed = observe(KEYS[3], ARGV[4])
local mine = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[2]))
if not mine or mine < now or now - resumed < tonumber(ARGV[5]) then
  return {{}, {}}
end
local room, out, gone = tonumber(ARGV[3]), {}, {}
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now, 'LIMIT', 0, 16)) do
  if room > 0 then
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', room, name)
    if #pending > 0 then
      local ids, counts = {}, {}
      for i, entry in ipairs(pending) do
        ids[i] = entry[1]
        counts[entry[1]] = entry[4] + 1  -- the claim below is one more delivery
      end
      for _, entry in ipairs(redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))) do
        collect(KEYS[1], ARGV[1], entry, counts[entry[1]], out)
      end
      room = tonumber(ARGV[3]) - #out
    end
  end
  if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, name) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    redis.call('ZREM', KEYS[2], name)
    gone[#gone + 1] = name
  end
end
return {out, gone}
"""
)

#: KEYS: ready. ARGV: group, minimum idle (ms) of a consumer to delete, own consumer name.
#: Deletes consumers that hold nothing and have not been seen for long (dead workers).
PRUNE = """
local removed = 0
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields['name'] ~= ARGV[3] and tonumber(fields['pending']) == 0
      and tonumber(fields['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    removed = removed + 1
  end
end
return removed
"""
