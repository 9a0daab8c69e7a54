"""Plain-text formatting shared by the pages: exact money, times, one-line previews.
No Reflex here."""

from __future__ import annotations

from datetime import UTC, datetime

PREVIEW_CHARS = 160


def exact_usd(micros: int) -> str:
    """`$1,234.567891`: dollars with six decimals, the exact micro-dollar amount (as the API gives it)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(int(micros)), 1_000_000)
    return f"{sign}${whole:,}.{frac:06d}"


def when(moment: datetime | None) -> str:
    """A timestamp as `2025-03-04 17:05 UTC` ("" for none)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """A text on one line, cut to `limit` characters (with "…") for a list or a table cell."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
