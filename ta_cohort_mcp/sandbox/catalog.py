"""The event catalog of a sandbox project: its events, event and user properties."""

from typing import Any

import duckdb

from ta_cohort_mcp.sandbox.data import EVENT_TABLE, USER_TABLE, quote_identifier

# Columns that hold the table's own bookkeeping, not a property.
_HIDDEN_EVENT_COLUMNS = frozenset({"project_id", "#user_id", "#event_name"})
_HIDDEN_USER_COLUMNS = frozenset({"project_id"})


def property_type(duckdb_type: str) -> str:
    """Map a DuckDB column type to a catalog type: string, number, boolean, datetime.

    Raises:
        ValueError: the type has no catalog type, such as a list or a struct.
    """
    kind = duckdb_type.upper()
    if kind in ("VARCHAR", "UUID") or kind.startswith("VARCHAR"):
        return "string"
    if kind == "BOOLEAN":
        return "boolean"
    if kind.startswith(("TIMESTAMP", "DATE")):
        return "datetime"
    integers = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
    numeric = {*integers, *(f"U{name}" for name in integers), "FLOAT", "DOUBLE"}
    if kind in numeric or kind.startswith("DECIMAL"):
        return "number"
    raise ValueError(f"column type {duckdb_type} has no catalog type")


def table_columns(connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Return the columns of a table in the main schema, name -> DuckDB type."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def sample_catalog(
    connection: duckdb.DuckDBPyConnection, project_id: int
) -> dict[str, Any]:
    """Describe a project's events and properties as a JSON-able dict.

    Each event lists the event properties that at least one of its rows has a value
    for, in column order. Properties come from the table columns, so the catalog
    follows the tables. A project without data gets empty lists.
    """
    event_columns = {
        name: kind
        for name, kind in table_columns(connection, EVENT_TABLE).items()
        if name not in _HIDDEN_EVENT_COLUMNS
    }
    user_columns = {
        name: kind
        for name, kind in table_columns(connection, USER_TABLE).items()
        if name not in _HIDDEN_USER_COLUMNS
    }
    return {
        "projectId": project_id,
        "events": _events(connection, project_id, list(event_columns)),
        "eventProperties": _properties(event_columns),
        "userProperties": _properties(user_columns),
    }


def _properties(columns: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"name": name, "type": property_type(kind)} for name, kind in columns.items()
    ]


def _events(
    connection: duckdb.DuckDBPyConnection, project_id: int, columns: list[str]
) -> list[dict[str, Any]]:
    """List each event name of a project with the properties its rows carry."""
    if not columns:
        return []
    counts = ", ".join(f"count({quote_identifier(name)})" for name in columns)
    rows = connection.execute(
        f'SELECT "#event_name", {counts} FROM {EVENT_TABLE} '
        'WHERE project_id = ? GROUP BY "#event_name" ORDER BY "#event_name"',
        [project_id],
    ).fetchall()
    events = []
    for row in rows:
        present = [name for name, count in zip(columns, row[1:], strict=True) if count]
        events.append({"name": str(row[0]), "properties": present})
    return events
