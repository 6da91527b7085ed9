"""The ``--since`` / ``?since=`` value: a date, a date and time, or a duration back from now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rag.errors import BadQuery

_DURATION = re.compile(r"(\d{1,6})\s*([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
HELP = "a date (2026-11-01), a UTC date and time (2026-11-01T09:00) or a duration (12h, 7d, 2w)"


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """The UTC instant ``value`` names; BadQuery (field ``since``) when it names none."""
    text = value.strip().lower()
    match = _DURATION.fullmatch(text)
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2)]
        try:
            return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
        except OverflowError:  # 999999w: before the year 1, which a datetime cannot hold
            raise BadQuery(
                f"{value.strip()!r} goes back before the year 1", field="since"
            ) from None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadQuery(f"must be {HELP}, not {value!r}", field="since") from None
    # The log's timestamps are UTC: a date or time without an offset is read as UTC too.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def log_timestamp(when: datetime) -> str:
    """``when`` written the way the query log writes its timestamps, so text comparison works."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")
