"""The SQL of the PostgreSQL result backend: one table, atomic upserts, bounded purges."""

from __future__ import annotations

import re

DEFAULT_TABLE = "taskiq_kit_results"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


def _upsert(column: str, merge: str, *, notify: bool = False) -> str:
    """One atomic upsert of ``column``: an expired row is reset first, ``expires_at`` only grows.

    With ``notify``, the same statement sends NOTIFY on channel ``$4`` with the task id.
    """
    cast = "bytea" if column == "result" else "jsonb"
    resets = ", ".join(
        f"{name} = CASE WHEN t.expires_at <= now() THEN NULL ELSE t.{name} END"
        for name in ("record", "result", "progress")
        if name != column
    )
    # Only this module's constant column names are interpolated.
    upsert = (
        f"INSERT INTO %TABLE% AS t (task_id, {column}, expires_at) "  # noqa: S608
        f"VALUES ($1, $2::{cast}, now() + $3::float8 * interval '1 second') "
        f"ON CONFLICT (task_id) DO UPDATE SET {column} = {merge}, {resets}, "
        "expires_at = CASE WHEN t.expires_at <= now() THEN EXCLUDED.expires_at "
        "WHEN t.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL "
        "ELSE GREATEST(t.expires_at, EXCLUDED.expires_at) END"
    )
    if not notify:
        return upsert
    return f"WITH w AS ({upsert} RETURNING t.task_id) SELECT pg_notify($4, task_id) FROM w"  # noqa: S608


_FINALS = "('success', 'failure', 'aborted', 'expired')"
_KICKS = "('pending', 'scheduled', 'retrying')"
_LIVE = "(t.expires_at IS NULL OR t.expires_at > now())"
# The rule of taskiq_kit.results.writes.applies, over the row ``t`` and the write ``EXCLUDED``
# (a write's kick and attempt are its record's ``kicked_at`` and ``attempt``, when it names them).
_RK = "(t.record->>'kicked_at')::float8"
_WK = "(EXCLUDED.record->>'kicked_at')::float8"
_RA = "COALESCE((t.record->>'attempt')::int, 0)"
_WA = "(EXCLUDED.record->>'attempt')::int"
_NEWER_KICK = f"({_WK} IS NOT NULL AND ({_RK} IS NULL OR {_WK} > {_RK}))"
_SAME_KICK = f"({_WK} IS NULL OR {_WK} = {_RK})"
_NEWER = f"({_NEWER_KICK} OR ({_SAME_KICK} AND COALESCE({_WA} > {_RA}, false)))"
_ABORTED = "(t.record->>'abort_requested_at' IS NOT NULL)"
# A requeue (taskiq's Context.requeue()) names its count: it is not a new kick.
_IS_REQUEUE = "(EXCLUDED.record ? 'requeues')"
_IS_KICK = f"(EXCLUDED.record->>'status' IN {_KICKS} AND NOT {_IS_REQUEUE})"
# The end of an earlier attempt than the record's (its retry was kicked before it ended).
_EARLIER_FINAL = (
    f"(EXCLUDED.record->>'status' IN {_FINALS} AND {_SAME_KICK} AND COALESCE({_WA} < {_RA}, false))"
)
_APPLIES = (
    f"(NOT {_LIVE} OR t.record->>'status' IS NULL OR (NOT COALESCE({_WK} < {_RK}, false) AND "
    f"CASE WHEN {_IS_KICK} THEN {_NEWER} AND ({_NEWER_KICK} OR NOT {_ABORTED}) "
    f"WHEN {_EARLIER_FINAL} THEN false "
    f"WHEN t.record->>'status' IN {_FINALS} AND NOT {_NEWER} THEN false "
    f"WHEN (EXCLUDED.record->>'status' = 'started' OR {_IS_REQUEUE}) AND {_ABORTED} "
    f"THEN {_NEWER_KICK} "
    "ELSE true END))"
)
_FRESH = f"(NOT {_LIVE} OR {_IS_KICK})"
# taskiq_kit.results.writes.result_only: that earlier attempt's result is kept, not its status.
_RESULT_ONLY = (
    f"({_LIVE} AND {_EARLIER_FINAL} AND EXCLUDED.result IS NOT NULL "
    f"AND t.record->>'status' NOT IN {_FINALS} AND NOT COALESCE({_WK} < {_RK}, false))"
)

# The timeline: a write with a status carries ``[[status, updated_at]]``; the row's grows by it
# (a new kick starts it afresh, a retry of the same kick continues it).
_WITH_TIMELINE = (
    "CASE WHEN w.record ? 'status' THEN w.record || jsonb_build_object('timeline', "
    "jsonb_build_array(jsonb_build_array(w.record->'status', COALESCE(w.record->'updated_at', "
    "to_jsonb(extract(epoch FROM clock_timestamp())::float8))))) "
    "ELSE w.record END"
)
_OLD_TIMELINE = "COALESCE(t.record->'timeline', '[]'::jsonb)"
_NEW_TIMELINE = "COALESCE(EXCLUDED.record->'timeline', '[]'::jsonb)"
# A requeue into the status the row has (flow control putting a run off again): no new entry.
_REPEATED = f"({_IS_REQUEUE} AND t.record->>'status' = EXCLUDED.record->>'status')"

#: One statement for a batch of record writes (no task twice): $1 task ids, $2 records (jsonb
#: text), $3 results (bytea or NULL), $4 TTLs in seconds (NULL: keep forever), $5 the channel
#: announcing final statuses. Returns the rows written: task id, status, abort requested (a row
#: whose status is not the write's kept only the write's result: see ``_RESULT_ONLY``).
_WRITE_RECORDS = (
    "WITH up AS (INSERT INTO %TABLE% AS t (task_id, record, result, expires_at) "  # noqa: S608
    f"SELECT w.task_id, {_WITH_TIMELINE}, w.result, now() + w.ttl * interval '1 second' "
    "FROM unnest($1::text[], $2::jsonb[], $3::bytea[], $4::float8[]) "
    "AS w(task_id, record, result, ttl) "
    "ON CONFLICT (task_id) DO UPDATE SET "
    f"record = CASE WHEN {_RESULT_ONLY} THEN t.record WHEN {_FRESH} THEN EXCLUDED.record "
    f"|| jsonb_build_object('timeline', CASE WHEN {_LIVE} AND {_WK} = {_RK} "
    f"THEN {_OLD_TIMELINE} || {_NEW_TIMELINE} ELSE {_NEW_TIMELINE} END) "
    "ELSE COALESCE(t.record, '{}'::jsonb) || EXCLUDED.record "
    f"|| jsonb_build_object('timeline', CASE WHEN {_REPEATED} THEN {_OLD_TIMELINE} "
    f"ELSE {_OLD_TIMELINE} || {_NEW_TIMELINE} END) END, "
    f"result = CASE WHEN EXCLUDED.result IS NOT NULL THEN EXCLUDED.result "
    f"WHEN {_FRESH} THEN NULL ELSE t.result END, "
    f"progress = CASE WHEN {_FRESH} THEN NULL ELSE t.progress END, "
    f"expires_at = CASE WHEN {_FRESH} THEN EXCLUDED.expires_at "
    "WHEN t.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL "
    "ELSE GREATEST(t.expires_at, EXCLUDED.expires_at) END "
    f"WHERE {_APPLIES} OR {_RESULT_ONLY} "
    "RETURNING t.task_id, t.record->>'status' AS status, "
    "t.record->>'abort_requested_at' IS NOT NULL AS aborted) "
    f"SELECT task_id, status, aborted, CASE WHEN status IN {_FINALS} "
    "THEN pg_notify($5, task_id) END IS NULL AS quiet FROM up"
)

#: The abort's tombstone: $1 task id, $2 fields (jsonb text). Never creates a row, never
#: touches a final record.
_MARK_RECORD = (
    "UPDATE %TABLE% AS t SET record = t.record || $2::jsonb "  # noqa: S608
    f"WHERE t.task_id = $1 AND {_LIVE} AND t.record->>'status' IS NOT NULL "
    f"AND t.record->>'status' NOT IN {_FINALS} "
    "RETURNING t.record->>'status' AS status"
)

#: The state of records whose write was refused: $1 task ids.
_RECORD_STATES = (
    "SELECT task_id, record->>'status' AS status, "  # noqa: S608
    "record->>'abort_requested_at' IS NOT NULL AS aborted FROM %TABLE% AS t "
    f"WHERE task_id = ANY($1::text[]) AND {_LIVE}"
)


# %TABLE% and %INDEX% are replaced by validated, quoted identifiers (see :func:`check_table`).
SQL = {
    "create_table": (
        "CREATE TABLE IF NOT EXISTS %TABLE% (task_id text PRIMARY KEY, record jsonb, "
        "result bytea, progress jsonb, expires_at timestamptz)"
    ),
    "create_index": (
        "CREATE INDEX IF NOT EXISTS %INDEX% ON %TABLE% (expires_at) WHERE expires_at IS NOT NULL"
    ),
    "write_records": _WRITE_RECORDS,
    "mark_record": _MARK_RECORD,
    "record_states": _RECORD_STATES,
    "abort_requested_among": (
        "SELECT task_id FROM %TABLE% AS t WHERE task_id = ANY($1::text[]) "  # noqa: S608
        f"AND {_LIVE} AND t.record->>'abort_requested_at' IS NOT NULL"
    ),
    "write_progress_notify": _upsert("progress", "EXCLUDED.progress", notify=True),
    "get_record": "SELECT record FROM %TABLE% WHERE task_id = $1 AND (expires_at IS NULL OR expires_at > now())",
    "result_ready": "SELECT true FROM %TABLE% WHERE task_id = $1 AND result IS NOT NULL AND (expires_at IS NULL OR expires_at > now())",
    "get_result": "SELECT result FROM %TABLE% WHERE task_id = $1 AND (expires_at IS NULL OR expires_at > now())",
    "get_progress": "SELECT progress FROM %TABLE% WHERE task_id = $1 AND (expires_at IS NULL OR expires_at > now())",
    "purge": (
        "DELETE FROM %TABLE% WHERE task_id IN (SELECT task_id FROM %TABLE% "
        "WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)"
    ),
}


def check_table(name: str) -> str:
    """Return ``name`` if it is a usable ``table`` or ``schema.table`` name.

    Raises:
        ValueError: otherwise (the name is put in SQL text, so only plain identifiers pass).

    """
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ValueError(
            f"invalid table name {name!r}: use 'table' or 'schema.table', each 1-48 letters, "
            "digits or '_', not starting with a digit"
        )
    return name


def render(table: str) -> dict[str, str]:
    """The statements for ``table`` (validated), by name."""
    name = check_table(table)
    quoted = ".".join(f'"{part}"' for part in name.split("."))
    index = f'"{name.split(".")[-1]}_expires_at_idx"'
    # Only validated, quoted identifiers are substituted: values always go as $n parameters.
    return {
        key: sql.replace("%TABLE%", quoted).replace("%INDEX%", index) for key, sql in SQL.items()
    }
