"""Order statistics of timing samples."""

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile (`fraction` in [0, 1]) of the samples.

    Raises:
        ValueError: `samples` is empty or `fraction` is outside [0, 1].
    """
    if not samples:
        raise ValueError("percentile of no samples; measure at least one")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    """Return the median, the mean of the two middle samples for an even count."""
    if not samples:
        raise ValueError("median of no samples; measure at least one")
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
