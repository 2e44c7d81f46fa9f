"""Record writes in Redis: one script call applies a whole batch, each write atomically.

The script is :func:`taskiq_kit.results.writes.applies` in Lua. Field values are stored as JSON
text in the status hash, so a final status is compared in its quoted form (``"success"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_core import to_json

from taskiq_kit.results.record import FINAL_VALUES
from taskiq_kit.results.redis_keys import ResultKeys
from taskiq_kit.results.writes import RecordWrite, WriteOutcome

#: KEYS: per write, its status hash, result and progress keys. ARGV: per write, its kind,
#: TTL in ms (-1: keep forever), channel announcing a final status ('' for none), kicked_at
#: ('' for none), attempt ('' for none), encoded result ('' for none; never empty when set),
#: the number of field pairs, then the pairs. Returns, per write, {applied 0/1, the record's
#: status after it (JSON text, or false when there is no record), abort requested 0/1}.
WRITE_RECORDS = """
local FINAL = {['"success"'] = true, ['"failure"'] = true, ['"aborted"'] = true,
  ['"expired"'] = true}
local out = {}
local a = 1
for i = 1, #KEYS, 3 do
  local skey, rkey, pkey = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local kind, ttl, channel = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local wk, wa, result = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  local first = a + 7
  a = first + 2 * tonumber(ARGV[a + 6])
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
    elseif FINAL[status] and not newer then
      ok = false
    else
      ok = not (kind == 'run' and aborted and not newer_kick)
    end
  end
  if ok then
    if kind == 'kick' then
      redis.call('DEL', skey, rkey, pkey)
      aborted = false
    end
    for f = first, a - 1, 2 do
      if ARGV[f] == 'status' then status = ARGV[f + 1] end
      if ARGV[f] == 'abort_requested_at' then aborted = true end
    end
    redis.call('HSET', skey, unpack(ARGV, first, a - 1))
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
  out[#out + 1] = {ok and 1 or 0, status or false, aborted and 1 or 0}
end
return out
"""


def _ttl_ms(ttl: float | None) -> int:
    return -1 if ttl is None else max(1, math.ceil(ttl * 1000))


def pack(
    writes: Sequence[RecordWrite],
    keys: ResultKeys,
    record_ttl: Callable[[float | None, float], float | None],
    now: float,
) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of :data:`WRITE_RECORDS` for ``writes``."""
    script_keys: list[str] = []
    args: list[Any] = []
    for write in writes:
        task_id = write.task_id
        script_keys += (keys.status(task_id), keys.result(task_id), keys.progress(task_id))
        fields = write.fields
        args += (
            write.kind,
            _ttl_ms(record_ttl(write.due_at, now)),
            keys.events(task_id) if fields.get("status") in FINAL_VALUES else "",
            "" if write.kicked_at is None else repr(write.kicked_at),
            "" if write.attempt is None else write.attempt,
            b"" if write.result is None else write.result,
            len(fields),
        )
        for name, value in fields.items():
            args += (name, to_json(value))
    return script_keys, args


def _status(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode().strip('"')
    if isinstance(value, str):
        return value.strip('"')
    return None


def parse(reply: Sequence[Sequence[Any]]) -> list[WriteOutcome]:
    """The outcomes in a reply of :data:`WRITE_RECORDS`."""
    return [
        WriteOutcome(applied == 1, _status(status), aborted == 1)
        for applied, status, aborted in reply
    ]
