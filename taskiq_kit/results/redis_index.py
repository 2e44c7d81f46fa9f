"""The task index in Redis: sorted sets kept beside the records, in the records' own script call.

Keys, all under one hash tag (``<prefix>:{index}:...``, see
:meth:`~taskiq_kit.results.redis_keys.ResultKeys.index`):

* ``all``: every indexed task id, scored by its kick time (unix seconds);
* ``status:<status>``, ``name:<task name>``, ``queue:<queue>``: the same, per status, per task
  name, per queue;
* ``entries``: a hash, task id -> ``code NUL kicked_at NUL name NUL queue`` (what the sets hold
  it under, so it can be moved or dropped without reading its record);
* ``expiry``: task id -> the unix milliseconds its record expires at (the record's TTL only
  grows, so does this score; ``ZADD GT``). Entries past it are dropped (``index_trim``) by every
  write call (as many as it wrote, and ten more) and before every read (up to 10,000): the index
  does not outlive its records. Reads also drop entries whose record is gone.

Needs Redis 6.2 or later (``ZADD GT``); the scripts read the server's clock (``TIME``).

**One round trip, single server.** :data:`INDEX_LIB` is a Lua library (functions only) that the
record script (:data:`taskiq_kit.results.redis_writes.WRITE_RECORDS`) includes: each applied
write becomes a *move* (task id, new status code, kick, name, queue, expiry, fresh) and the
script applies the moves (``index_move``) after the records, in the same call.

**Redis Cluster.** There the records live in per-task slots and the index in the ``{index}``
slot, so one script cannot touch both. The split is: the record script built with
:data:`taskiq_kit.results.redis_writes.RECORDS_ONLY_TAIL` returns its outcomes *and* the moves
(flat, nine strings each), and :data:`APPLY_MOVES` (this library plus a loop over ``ARGV``)
applies them to the index in a second call, on the index's node. A crash between the two calls
leaves records unindexed until their next write (listing skips nothing it has; counts lag);
reads already drop entries whose record is gone. The second call also announces the final
statuses (``PUBLISH`` on each task's ``events`` channel, which the single-server script does in
its one call): a waiter woken by the announcement finds the task under its final status in the
index as well; one that reads the record on its own (a timed re-check) may see it a moment
before the index does, and a crash between the calls leaves such waiters to their re-checks. Two writers of one task racing (a worker's
``success`` and an abort, say) may send their second calls in the other order: each move
carries its record write's *stamp* (the record node's ``TIME`` in microseconds; a task's writes
all run on its slot's node, one after the other), kept as a fifth field of the entry, and a
move older than the entry's stamp changes nothing but the expiry. A failover to a replica whose
clock is behind could make a newer move look older until the task's next write.

Every index script declares one key, the anchor
(:meth:`~taskiq_kit.results.redis_keys.ResultKeys.index_anchor`, ``<prefix>:{index}:all``), so a
cluster runs it on the index's node; the other keys it builds from the prefix in Lua share the
anchor's hash tag, hence its slot. No index script reads a task record (see
:mod:`taskiq_kit.results.redis_inspect`).
"""

from __future__ import annotations

#: Lua functions shared by every index script (no statement runs on its own).
INDEX_LIB = """
local IX_NAMES = {p = 'pending', c = 'scheduled', s = 'started', r = 'retrying',
  S = 'success', F = 'failure', A = 'aborted', E = 'expired'}
local function ix_split(s)
  local parts, start = {}, 1
  while true do
    local stop = string.find(s, '\\0', start, true)
    if not stop then
      parts[#parts + 1] = string.sub(s, start)
      return parts
    end
    parts[#parts + 1] = string.sub(s, start, stop - 1)
    start = stop + 1
  end
end
local function ix_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ix_drop(ix, id)
  local entries = ix .. 'entries'
  local old = redis.call('HGET', entries, id)
  if old then
    local o = ix_split(old)
    redis.call('ZREM', ix .. 'all', id)
    if IX_NAMES[o[1]] then redis.call('ZREM', ix .. 'status:' .. IX_NAMES[o[1]], id) end
    if o[3] ~= '' then redis.call('ZREM', ix .. 'name:' .. o[3], id) end
    if o[4] ~= '' then redis.call('ZREM', ix .. 'queue:' .. o[4], id) end
    redis.call('HDEL', entries, id)
  end
  redis.call('ZREM', ix .. 'expiry', id)
end
local function index_trim(ix, now_ms, n)
  local gone = redis.call('ZRANGEBYSCORE', ix .. 'expiry', '-inf', now_ms, 'LIMIT', 0, n)
  for _, id in ipairs(gone) do ix_drop(ix, id) end
  return #gone
end
-- One move: the task id, its status code ('' unchanged), kick time ('' unchanged), name and
-- queue ('' unchanged), the record's expiry in unix ms ('-1': never), '1' for a kick, and (on a
-- cluster) the stamp of its record write: the record node's time in microseconds, '' or nil none.
local function index_move(ix, now_ms, id, code, kick, name, queue, deadline, fresh, stamp)
  local entries = ix .. 'entries'
  local old = redis.call('HGET', entries, id)
  local o = old and ix_split(old) or nil
  if stamp == nil then stamp = '' end
  if o and stamp ~= '' and o[5] and o[5] ~= '' and tonumber(o[5]) > tonumber(stamp) then
    -- A move of an older write of this task, applied after a newer one's (two writers racing
    -- on a cluster): the newer one holds; only the expiry may grow.
    if deadline ~= '-1' then redis.call('ZADD', ix .. 'expiry', 'GT', deadline, id) end
    return
  end
  if o then
    if code == '' then code = o[1] end
    if kick == '' then kick = o[2] end
    if name == '' then name = o[3] end
    if queue == '' then queue = o[4] end
  end
  if code == '' or not IX_NAMES[code] then return end
  if kick == '' then kick = tostring(now_ms / 1000) end
  local moved = (not o) or o[2] ~= kick
  local changed = moved or o[1] ~= code or o[3] ~= name or o[4] ~= queue
    or (stamp ~= '' and o[5] ~= stamp)
  if moved then redis.call('ZADD', ix .. 'all', kick, id) end
  if moved or o[1] ~= code then
    if o and o[1] ~= code and IX_NAMES[o[1]] then
      redis.call('ZREM', ix .. 'status:' .. IX_NAMES[o[1]], id)
    end
    redis.call('ZADD', ix .. 'status:' .. IX_NAMES[code], kick, id)
  end
  if moved or o[3] ~= name then
    if o and o[3] ~= '' and o[3] ~= name then redis.call('ZREM', ix .. 'name:' .. o[3], id) end
    if name ~= '' then redis.call('ZADD', ix .. 'name:' .. name, kick, id) end
  end
  if moved or o[4] ~= queue then
    if o and o[4] ~= '' and o[4] ~= queue then redis.call('ZREM', ix .. 'queue:' .. o[4], id) end
    if queue ~= '' then redis.call('ZADD', ix .. 'queue:' .. queue, kick, id) end
  end
  if changed then
    local entry = code .. '\\0' .. kick .. '\\0' .. name .. '\\0' .. queue
    if stamp ~= '' then entry = entry .. '\\0' .. stamp end
    redis.call('HSET', entries, id, entry)
  end
  if deadline == '-1' then
    redis.call('ZREM', ix .. 'expiry', id)
  elseif fresh == '1' or not o then
    redis.call('ZADD', ix .. 'expiry', deadline, id)
  else
    redis.call('ZADD', ix .. 'expiry', 'GT', deadline, id)
  end
end
"""

#: The index half of a write on a cluster: KEYS[1] the index anchor (its slot), ARGV[1] the index
#: prefix, then nine strings per move (those of ``index_move``, then the channel announcing the
#: write's final status or ''). It announces the final statuses once the index has them, so a
#: waiter woken by the announcement finds the task under its final status in the index too.
#: Returns how many expired entries it dropped.
APPLY_MOVES = (
    INDEX_LIB
    + """
local ix, now_ms = ARGV[1], ix_now_ms()
local n = (#ARGV - 1) / 9
for m = 0, n - 1 do
  local b = 1 + 9 * m
  index_move(ix, now_ms, ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5],
    ARGV[b + 6], ARGV[b + 7], ARGV[b + 8])
  if ARGV[b + 9] ~= '' then redis.call('PUBLISH', ARGV[b + 9], 'status') end
end
return index_trim(ix, now_ms, n + 10)
"""
)

#: One page of task ids. KEYS[1]: the index anchor. ARGV: index prefix, base set ('all',
#: 'status:x', 'name:x' or 'queue:x'), max score, min score (ZREVRANGEBYSCORE syntax), cursor task
#: id ('' none) and score, how many to find, status codes ('' any), name, queue, search (lower
#: case; '' any), most entries to look at. Returns a flat array: id, score... then the last id and score looked
#: at ('' when the set was exhausted).
LIST_TASKS = (
    INDEX_LIB
    + """
local ix = ARGV[1]
local now_ms = ix_now_ms()
for _ = 1, 20 do if index_trim(ix, now_ms, 500) < 500 then break end end
local base, maxs, mins = ix .. ARGV[2], ARGV[3], ARGV[4]
local cid, cat = ARGV[5], tonumber(ARGV[6])
local want, codes, name, queue, search = tonumber(ARGV[7]), ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local budget = tonumber(ARGV[12])
local filtered = codes ~= '' or name ~= '' or queue ~= '' or search ~= ''
local entries = ix .. 'entries'
local out, found, offset, seen = {}, 0, 0, 0
local last_id, last_score = '', ''
while found < want and seen < budget do
  local chunk = redis.call('ZREVRANGEBYSCORE', base, maxs, mins, 'WITHSCORES', 'LIMIT', offset, 200)
  if #chunk == 0 then return {out, '', ''} end
  offset = offset + #chunk / 2
  for j = 1, #chunk, 2 do
    local id, score = chunk[j], chunk[j + 1]
    seen = seen + 1
    last_id, last_score = id, score
    local keep = not (cid ~= '' and tonumber(score) == cat and id >= cid)
    if keep and filtered then
      local e = redis.call('HGET', entries, id)
      if not e then
        keep = false
      else
        local p = ix_split(e)
        if codes ~= '' and not string.find(codes, p[1], 1, true) then keep = false
        elseif name ~= '' and p[3] ~= name then keep = false
        elseif queue ~= '' and p[4] ~= queue then keep = false
        elseif search ~= '' and not string.find(string.lower(id), search, 1, true)
          and not string.find(string.lower(p[3]), search, 1, true) then keep = false
        end
      end
    end
    if keep then
      out[#out + 1] = id
      out[#out + 1] = score
      found = found + 1
      if found >= want then return {out, last_id, last_score} end
    end
    if seen >= budget then break end
  end
end
return {out, last_id, last_score}
"""
)

#: Counts per status code. KEYS[1]: the index anchor. ARGV: index prefix, min score, max score (ZRANGEBYSCORE syntax),
#: name, queue, search (lower case; '' any). Returns a flat array: code, count...
COUNT_TASKS = (
    INDEX_LIB
    + """
local ix = ARGV[1]
local now_ms = ix_now_ms()
for _ = 1, 20 do if index_trim(ix, now_ms, 500) < 500 then break end end
local mins, maxs, name, queue, search = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local out = {}
if name == '' and queue == '' and search == '' then
  for code, status in pairs(IX_NAMES) do
    out[#out + 1] = code
    out[#out + 1] = redis.call('ZCOUNT', ix .. 'status:' .. status, mins, maxs)
  end
  return out
end
local base = ix .. 'all'
if name ~= '' then base = ix .. 'name:' .. name elseif queue ~= '' then base = ix .. 'queue:' .. queue end
local counts, entries, offset = {}, ix .. 'entries', 0
while true do
  local ids = redis.call('ZRANGEBYSCORE', base, mins, maxs, 'LIMIT', offset, 500)
  if #ids == 0 then break end
  offset = offset + #ids
  for _, id in ipairs(ids) do
    local e = redis.call('HGET', entries, id)
    if e then
      local p = ix_split(e)
      if (name == '' or p[3] == name) and (queue == '' or p[4] == queue) and (search == ''
          or string.find(string.lower(id), search, 1, true)
          or string.find(string.lower(p[3]), search, 1, true)) then
        counts[p[1]] = (counts[p[1]] or 0) + 1
      end
    end
  end
end
for code, n in pairs(counts) do
  out[#out + 1] = code
  out[#out + 1] = n
end
return out
"""
)

#: Drop index entries whose record is gone. KEYS[1]: the index anchor. ARGV: index prefix, then
#: task ids.
DROP_ENTRIES = (
    INDEX_LIB
    + """
for i = 2, #ARGV do ix_drop(ARGV[1], ARGV[i]) end
return #ARGV - 1
"""
)

#: Status codes of the index (the letters of ``redis_writes``' replies).
CODES = {
    "pending": "p",
    "scheduled": "c",
    "started": "s",
    "retrying": "r",
    "success": "S",
    "failure": "F",
    "aborted": "A",
    "expired": "E",
}
