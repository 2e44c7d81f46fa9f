"""Record writes in Redis: one script call applies a whole batch, each write atomically.

The script is :func:`taskiq_kit.results.writes.applies` in Lua. Field values are stored as JSON
text in the status hash, so a final status is compared in its quoted form (``"success"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pydantic_core import to_json

from taskiq_kit.results.record import FINAL_VALUES
from taskiq_kit.results.redis_index import INDEX_LIB
from taskiq_kit.results.redis_keys import ResultKeys
from taskiq_kit.results.writes import RecordWrite, WriteOutcome

_RECORDS = """
local FINAL = {['"success"'] = true, ['"failure"'] = true, ['"aborted"'] = true,
  ['"expired"'] = true}
local CODE = {['"pending"'] = 'p', ['"scheduled"'] = 'c', ['"started"'] = 's',
  ['"retrying"'] = 'r', ['"success"'] = 'S', ['"failure"'] = 'F', ['"aborted"'] = 'A',
  ['"expired"'] = 'E'}
local split = ix_split
local now_ms = ix_now_ms()
local clock = redis.call('TIME')
local stamp = clock[1] .. string.format('%06d', tonumber(clock[2]))
local moves = {}
local out = {}
for i = 1, #KEYS / 3 do
  local skey, rkey, pkey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local head, result = split(ARGV[2 * i]), ARGV[2 * i + 1]
  local kind, ttl, channel = head[1], tonumber(head[2]), head[3]
  local wk, wa = tonumber(head[4]), tonumber(head[5])
  local cur = redis.call('HMGET', skey, 'status', 'kicked_at', 'attempt', 'abort_requested_at',
    'timeline')
  local status = cur[1]
  local aborted = cur[4] ~= false and cur[4] ~= 'null'
  local ok
  if not status then
    ok = kind ~= 'mark'
  else
    local rk, ra = tonumber(cur[2]), tonumber(cur[3]) or 0
    local newer_kick = wk ~= nil and (rk == nil or wk > rk)
    local same_kick = wk == nil or wk == rk
    local newer = newer_kick or (same_kick and wa ~= nil and wa > ra)
    if wk ~= nil and rk ~= nil and wk < rk then
      ok = false
    elseif kind == 'kick' then
      ok = newer and (newer_kick or not aborted)
    elseif kind == 'final' and same_kick and wa ~= nil and wa < ra then
      ok = false
      if result ~= '' and not FINAL[status] then
        -- an earlier attempt's result, its retry still to finish: the result, not the status
        if ttl < 0 then
          redis.call('SET', rkey, result)
        else
          redis.call('SET', rkey, result, 'PX', ttl)
        end
      end
    elseif FINAL[status] and not newer then
      ok = false
    else
      ok = not ((kind == 'run' or kind == 'requeue') and aborted and not newer_kick)
    end
  end
  if ok then
    local timeline = cur[5]
    if kind == 'kick' then
      redis.call('DEL', skey, rkey, pkey)
      aborted = false
      -- a retry (same kick, later attempt) continues the timeline; a new kick starts it
      if not (wk ~= nil and tonumber(cur[2]) == wk) then timeline = false end
    end
    local fields = {}
    local set_status, at, name, queue = nil, tostring(now_ms / 1000), '', ''
    if wk ~= nil then
      fields[#fields + 1] = 'kicked_at'
      fields[#fields + 1] = head[4]
    end
    if wa ~= nil then
      fields[#fields + 1] = 'attempt'
      fields[#fields + 1] = head[5]
    end
    for f = 7, #head - 1, 2 do
      local field, value = head[f], head[f + 1]
      if field == 'status' then
        status = value
        set_status = value
      elseif field == 'updated_at' then
        at = value
      elseif field == 'task_name' then
        name = cjson.decode(value)
      elseif field == 'queue' then
        queue = cjson.decode(value)
      elseif field == 'abort_requested_at' and value ~= 'null' then
        aborted = true
      end
      fields[#fields + 1] = field
      fields[#fields + 1] = value
    end
    -- a requeue into the status the record has (flow control putting a run off again) adds
    -- no timeline entry: the timeline tells what happened, not each try
    if set_status and not (kind == 'requeue' and set_status == cur[1]) then
      local entry = '[' .. set_status .. ',' .. at .. ']'
      if timeline and string.len(timeline) > 2 then
        timeline = string.sub(timeline, 1, -2) .. ',' .. entry .. ']'
      else
        timeline = '[' .. entry .. ']'
      end
      fields[#fields + 1] = 'timeline'
      fields[#fields + 1] = timeline
    end
    if #fields > 0 then
      redis.call('HSET', skey, unpack(fields))
    end
    if ttl < 0 then
      redis.call('PERSIST', skey)
    elseif redis.call('PTTL', skey) < ttl then
      redis.call('PEXPIRE', skey, ttl)
    end
    if result ~= '' then
      if ttl < 0 then
        redis.call('SET', rkey, result)
      else
        redis.call('SET', rkey, result, 'PX', ttl)
      end
    end
    moves[#moves + 1] = {head[6], set_status and CODE[set_status] or '', head[4], name, queue,
      ttl < 0 and '-1' or tostring(now_ms + ttl), kind == 'kick' and '1' or '0', stamp, channel}
  end
  out[#out + 1] = (ok and '1' or '0') .. (status and (CODE[status] or '?') or '-')
    .. (aborted and '1' or '0')
end
"""

#: The end of :data:`WRITE_RECORDS` on one server: the index moves in the same call.
SINGLE_TAIL = """
local ix = ARGV[1]
for _, m in ipairs(moves) do
  index_move(ix, now_ms, m[1], m[2], m[3], m[4], m[5], m[6], m[7])
  if m[9] ~= '' then redis.call('PUBLISH', m[9], 'status') end
end
index_trim(ix, now_ms, #moves + 10)
return table.concat(out)
"""

#: The end of the record script on a Redis Cluster: the outcomes, then the moves (nine strings
#: each: the last two the write's stamp and the channel announcing its final status, or '') for :data:`~taskiq_kit.results.redis_index.APPLY_MOVES` on the index's node.
RECORDS_ONLY_TAIL = """
local reply = {table.concat(out)}
for _, m in ipairs(moves) do
  for k = 1, 9 do reply[#reply + 1] = m[k] end
end
return reply
"""

#: KEYS: per write, its status hash, result and progress keys. ARGV: the index's key prefix
#: (:meth:`~taskiq_kit.results.redis_keys.ResultKeys.index`), then per write two strings: its
#: head, NUL-separated (kind, TTL in ms or -1 to keep forever, channel announcing a final
#: status or '', kicked_at or '', attempt or '', task id, then field name / JSON value pairs),
#: and its encoded result ('' for none; a result is never empty). A write's kick and attempt
#: are stored as its ``kicked_at`` and ``attempt`` fields; a status write appends
#: ``[status, updated_at]`` to the record's ``timeline``. Returns one string, three characters
#: per write: applied ('1'/'0'), the record's status after it (a letter of ``_CODES``, '-' for
#: no record), abort requested ('1'/'0'). Few, flat arguments and one bulk string in return
#: cost the client far less than an argument per field and nested arrays.
#:
#: Each applied write also moves the task in the index (:mod:`taskiq_kit.results.redis_index`),
#: in the same call: one round trip per batch on one server. The index keys are not in KEYS
#: (they are built from the prefix): fine on one server; a cluster splits the call in two (see
#: :data:`RECORDS_ONLY_TAIL`).
WRITE_RECORDS = INDEX_LIB + _RECORDS + SINGLE_TAIL

#: The record half of :data:`WRITE_RECORDS` for a Redis Cluster (same KEYS and ARGV).
WRITE_RECORDS_ONLY = INDEX_LIB + _RECORDS + RECORDS_ONLY_TAIL

_CODES = {
    "p": "pending",
    "c": "scheduled",
    "s": "started",
    "r": "retrying",
    "S": "success",
    "F": "failure",
    "A": "aborted",
    "E": "expired",
}


def _ttl_ms(ttl: float | None) -> int:
    return -1 if ttl is None else max(1, math.ceil(ttl * 1000))


_KIND = {
    "kick": b"kick",
    "run": b"run",
    "requeue": b"requeue",
    "final": b"final",
    "mark": b"mark",
}


def pack(
    writes: Sequence[RecordWrite],
    keys: ResultKeys,
    record_ttl: Callable[[float | None, float], float | None],
    now: float,
) -> tuple[list[str], list[bytes]]:
    """The KEYS and ARGV of :data:`WRITE_RECORDS` for ``writes``."""
    script_keys: list[str] = []
    args: list[bytes] = [keys.index().encode()]
    for write in writes:
        task_id = write.task_id
        script_keys += (keys.status(task_id), keys.result(task_id), keys.progress(task_id))
        fields = write.fields
        head = [
            _KIND[write.kind],
            str(_ttl_ms(record_ttl(write.due_at, now))).encode(),
            keys.events(task_id).encode() if fields.get("status") in FINAL_VALUES else b"",
            b"" if write.kicked_at is None else repr(write.kicked_at).encode(),
            b"" if write.attempt is None else str(write.attempt).encode(),
            task_id.encode(),
        ]
        for name, value in fields.items():
            head += (name.encode(), to_json(value))
        args += (b"\0".join(head), b"" if write.result is None else write.result)
    return script_keys, args


def parse(reply: bytes | str) -> list[WriteOutcome]:
    """The outcomes in a reply of :data:`WRITE_RECORDS`."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    return [
        WriteOutcome(text[i] == "1", _CODES.get(text[i + 1]), text[i + 2] == "1")
        for i in range(0, len(text), 3)
    ]
