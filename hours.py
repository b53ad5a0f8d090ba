"""Opening hours as data: a time zone, a weekly schedule and dated closures; is the business open at an instant?

Pure and clock-free: every question takes the instant (unix seconds) it is about, so tests freeze time by
passing one. Local time comes from the IANA zone database (zoneinfo; the pinned `tzdata` package supplies it
where the operating system has none), so daylight-saving changes need no special case: a schedule is in
wall-clock time, as a sign on the door is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 24 * 60
_RANGE = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")

Span = tuple[int, int]  # minutes after local midnight: [start, end)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError when the zone database does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # ValueError: a path-like or malformed key
        raise ValueError(f"'{name}' is not an IANA time zone (e.g. America/New_York, Europe/Berlin)") from exc


def parse_span(text: str) -> Span:
    """"08:00-17:30" -> (480, 1050); "24:00" may end a day. ValueError says what is wrong."""
    match = _RANGE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a range like 08:00-17:30")
    start_h, start_m, end_h, end_m = map(int, match.groups())
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start_h > 23 or start_m > 59 or end_m > 59 or end > MINUTES_PER_DAY:
        raise ValueError(f"'{text}' is not a time of day (00:00 to 24:00)")
    if end <= start:
        raise ValueError(f"'{text}' ends before it starts; split a range past midnight over two days")
    return start, end


@dataclass(frozen=True)
class OpeningHours:
    """When the business is open; without a weekly schedule it counts as open except on closure days."""

    zone: ZoneInfo
    weekly: Mapping[int, tuple[Span, ...]]  # weekday (Monday 0) -> ranges; a day that is absent is closed
    closed_on: frozenset[date] = frozenset()

    @classmethod
    def build(cls, zone_name: str, weekly: Mapping[str, Iterable[str]], closed_on: Iterable[date] = ()) -> OpeningHours:
        """From config values: weekday names to "HH:MM-HH:MM" ranges; ValueError on anything malformed."""
        days = {WEEKDAYS.index(day): tuple(sorted(map(parse_span, spans))) for day, spans in weekly.items()}
        return cls(zone(zone_name), days, frozenset(closed_on))

    def local(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, UTC).astimezone(self.zone)

    def is_open(self, at: float) -> bool:
        local = self.local(at)
        if local.date() in self.closed_on:
            return False
        if not self.weekly:
            return True
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.weekly.get(local.weekday(), ()))

    def describe(self, at: float) -> str:
        """The local date and time and whether the business is open, in words for the LLM."""
        local = self.local(at)
        status = "open" if self.is_open(at) else "closed"
        return (f"It is now {local:%A} {local.day} {local:%B %Y}, {local:%H:%M} local time ({self.zone.key}); "
                f"the business is {status} right now.")
