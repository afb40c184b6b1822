"""Media in history: which keys hold media descriptors, and of what type.

A media value is stored as a non-numeric history value, a descriptor dict whose `_type` names what
it is (`image-file`, `table-file`, `histogram`, ...). The web app draws a media panel instead of a
line chart for such a key, so the key listing says the type of each key's latest value.
"""

from __future__ import annotations

from typing import Any

import msgpack
from sqlalchemy import Connection, and_, func, select

from branchline.store.lineage import segments_for_many
from branchline.store.schema import history_values

__all__ = ["media_type_of", "media_types"]


def media_type_of(value: Any) -> str | None:
    """The media type of a history value: its descriptor's `_type`, `plot/<preset>` for a table
    carrying a chart preset, None for anything else (numbers, strings, plain dicts)."""
    if not isinstance(value, dict):
        return None
    kind = value.get("_type")
    if not isinstance(kind, str) or not kind:
        return None
    chart = value.get("chart")
    if kind == "table-file" and isinstance(chart, dict) and isinstance(chart.get("preset"), str):
        return f"plot/{chart['preset']}"
    return kind


def media_types(conn: Connection, incarnation_ids: list[str], *, stream: int = 0) -> dict[str, dict[str, str]]:
    """Per incarnation: key -> media type of the key's latest value along its lineage (the
    incarnation's own value wins over its source's). Keys without media are left out."""
    chains = segments_for_many(conn, incarnation_ids)
    if stream != 0:
        chains = {inc_id: chain[-1:] for inc_id, chain in chains.items()}
    owners = sorted({s.incarnation_id for chain in chains.values() for s in chain})
    found: dict[str, dict[str, str]] = {owner: {} for owner in owners}
    v = history_values.c
    for offset in range(0, len(owners), 500):
        batch = owners[offset : offset + 500]
        latest = (
            select(v.incarnation_id, v.key, func.max(v.step).label("step"))
            .where(v.incarnation_id.in_(batch), v.stream == stream)
            .group_by(v.incarnation_id, v.key)
            .subquery()
        )
        rows = conn.execute(
            select(v.incarnation_id, v.key, v.value).join(
                latest,
                and_(
                    v.incarnation_id == latest.c.incarnation_id,
                    v.stream == stream,
                    v.key == latest.c.key,
                    v.step == latest.c.step,
                ),
            )
        )
        for owner, key, blob in rows:
            kind = media_type_of(msgpack.unpackb(blob))
            if kind is not None:
                found[owner][key] = kind
    out: dict[str, dict[str, str]] = {}
    for inc_id in incarnation_ids:
        merged: dict[str, str] = {}
        for seg in chains.get(inc_id, []):
            merged.update(found.get(seg.incarnation_id, {}))
        out[inc_id] = merged
    return out
