"""Parsing of the small value languages inside a mapping: regexes, statuses, durations.

Each function returns the parsed value or raises ``ValueError`` with a sentence for the user; the loader adds
the file, line, column and key. Kept apart from the loader so transforms can reuse them (`named_groups`).
"""

from __future__ import annotations

import re
from functools import lru_cache

import polars as pl

_GROUP = re.compile(r"\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>")
_DURATION = re.compile(r"^(?=\d)(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_STATUS_RANGE = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")


def named_groups(pattern: str | None) -> list[str]:
    """Names of the regex's named groups, ``(?P<name>…)`` or ``(?<name>…)``, in order."""
    return _GROUP.findall(pattern) if pattern else []


@lru_cache(maxsize=1024)
def regex_error(pattern: str) -> str | None:
    """Why polars' regex engine rejects ``pattern`` (None if it compiles).

    Compiled by polars itself, not Python's ``re``: the two syntaxes differ (look-around, ``\\Z``…), and what
    matters is whether the run will accept it.
    """
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except Exception as error:  # polars raises ComputeError carrying the regex crate's explanation
        text = str(error).split("This error occurred")[0]
        lines = [line.strip() for line in text.splitlines() if line.strip().startswith("error:")]
        return lines[-1].removeprefix("error:").strip() if lines else " ".join(text.split())
    return None


def parse_status(value: int | str) -> tuple[int, int]:
    """``200`` → (200, 200); ``'2xx'`` → (200, 299); ``'200-299'`` → (200, 299)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 100 <= value <= 599:
            return value, value
        raise ValueError(f"status {value} is not an HTTP status (100–599)")
    text = str(value).strip().lower()
    if match := _STATUS_CLASS.match(text):
        base = int(match.group(1)) * 100
        return base, base + 99
    if match := _STATUS_RANGE.match(text):
        low, high = int(match.group(1)), int(match.group(2))
        if low > high:
            raise ValueError(f"status range '{value}' is empty (write the lower code first)")
        return low, high
    if text.isdigit():
        return parse_status(int(text))
    raise ValueError(f"bad status {value!r}: write a code (200), a class ('2xx') or a range ('200-299')")


def parse_duration(value: int | float | str) -> float:
    """``90s`` → 90; ``30m`` → 1800; ``1h30m`` → 5400; a number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"duration {value} is negative")
        return float(value)
    match = _DURATION.match(str(value).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"bad duration {value!r}: write e.g. 90s, 30m, 1h30m or a number of seconds")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds
