"""Wait times between attempts: Retry-After parsing and exponential backoff."""

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# First backoff wait in seconds; each retry doubles it, up to max_retry_wait.
BACKOFF_BASE = 0.5


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the wait in seconds that a Retry-After header requests, or None.

    The header is either a number of seconds or an HTTP date. A date in the past
    gives 0. A value that is neither gives None, so the caller falls back to its
    own backoff. Decimal seconds are accepted although RFC 9110 allows only
    whole seconds.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (moment - current).total_seconds())


def backoff_wait(retry_index: int, max_wait: float) -> float:
    """Return the wait before retry `retry_index` (0 for the first retry).

    The wait doubles per retry from BACKOFF_BASE, is capped at `max_wait`, and
    is drawn between half the cap and the cap ("equal jitter"), so clients that
    failed together do not retry together.
    """
    cap = min(max_wait, BACKOFF_BASE * 2.0**retry_index)
    return cap / 2 + random.uniform(0, cap / 2)
