"""Record writes in Redis: one script call applies a whole batch, each write atomically.

The script is :func:`taskiq_kit.results.writes.applies` in Lua. Field values are stored as JSON
text in the status hash, so a final status is compared in its quoted form (``"success"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pydantic_core import to_json

from taskiq_kit.results.record import FINAL_VALUES
from taskiq_kit.results.redis_keys import ResultKeys
from taskiq_kit.results.writes import RecordWrite, WriteOutcome

#: KEYS: per write, its status hash, result and progress keys. ARGV: per write, two strings:
#: its head, NUL-separated (kind, TTL in ms or -1 to keep forever, channel announcing a final
#: status or '', kicked_at or '', attempt or '', then field name / JSON value pairs), and its
#: encoded result ('' for none; a result is never empty). A write's kick and attempt are stored
#: as its ``kicked_at`` and ``attempt`` fields. Returns one string, three characters per write:
#: applied ('1'/'0'), the record's status after it (a letter of ``_CODES``, '-' for no record),
#: abort requested ('1'/'0'). Few, flat arguments and one bulk string in return cost the client
#: far less than an argument per field and nested arrays.
WRITE_RECORDS = """
local FINAL = {['"success"'] = true, ['"failure"'] = true, ['"aborted"'] = true,
  ['"expired"'] = true}
local CODE = {['"pending"'] = 'p', ['"scheduled"'] = 'c', ['"started"'] = 's',
  ['"retrying"'] = 'r', ['"success"'] = 'S', ['"failure"'] = 'F', ['"aborted"'] = 'A',
  ['"expired"'] = 'E'}
local function split(s)
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
local out = {}
for i = 1, #KEYS / 3 do
  local skey, rkey, pkey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local head, result = split(ARGV[2 * i - 1]), ARGV[2 * i]
  local kind, ttl, channel = head[1], tonumber(head[2]), head[3]
  local wk, wa = tonumber(head[4]), tonumber(head[5])
  local cur = redis.call('HMGET', skey, 'status', 'kicked_at', 'attempt', 'abort_requested_at')
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
    if kind == 'kick' then
      redis.call('DEL', skey, rkey, pkey)
      aborted = false
    end
    local fields = {}
    if wk ~= nil then
      fields[#fields + 1] = 'kicked_at'
      fields[#fields + 1] = head[4]
    end
    if wa ~= nil then
      fields[#fields + 1] = 'attempt'
      fields[#fields + 1] = head[5]
    end
    for f = 6, #head - 1, 2 do
      local name, value = head[f], head[f + 1]
      if name == 'status' then status = value end
      if name == 'abort_requested_at' and value ~= 'null' then aborted = true end
      fields[#fields + 1] = name
      fields[#fields + 1] = value
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
    if channel ~= '' then
      redis.call('PUBLISH', channel, 'status')
    end
  end
  out[#out + 1] = (ok and '1' or '0') .. (status and (CODE[status] or '?') or '-')
    .. (aborted and '1' or '0')
end
return table.concat(out)
"""

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
    args: list[bytes] = []
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
