"""Lua scripts of the ready stream: settle, dead-letter, reclaim and prune, each one atomic."""

from __future__ import annotations

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
#: {next cursor, {{id, body or false, delivery count}...}}. Entries without a body are settled.
RECLAIM = """
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  'COUNT', ARGV[5])
local out = {}
for _, entry in ipairs(res[2]) do
  local id, fields, body = entry[1], entry[2], false
  if fields then
    for i = 1, #fields, 2 do
      if fields[i] == 'data' then body = fields[i + 1] end
    end
  end
  if body then
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    local count = 1
    if pending[1] then count = pending[1][4] end
    out[#out + 1] = {id, body, count}
  else
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
  end
end
return {res[1], out}
"""

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
