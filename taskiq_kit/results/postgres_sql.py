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


_MERGE_RECORD = (
    "CASE WHEN t.expires_at <= now() THEN EXCLUDED.record "
    "ELSE COALESCE(t.record, '{}'::jsonb) || EXCLUDED.record END"
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
    "write_status": _upsert("record", _MERGE_RECORD),
    "write_status_notify": _upsert("record", _MERGE_RECORD, notify=True),
    "set_result": _upsert("result", "EXCLUDED.result"),
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
