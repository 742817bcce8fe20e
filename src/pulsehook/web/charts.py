"""Charts as inline SVG strings, drawn on the server so the dashboard needs no JavaScript.

Everything here is pure: data in, markup out, no I/O and no clock. Every chart is
an ``<svg role="img">`` with a ``<title>`` and an ``aria-label`` that says in words
what the picture shows, so a screen reader gets the same story. A ``None`` score
is a gap in the line (nothing was known then), never a zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from html import escape

Point = tuple[datetime, float | None]

# Room around the plot for the axis labels: top, right, bottom, left.
MARGIN = (10, 14, 26, 40)
Y_TICKS = 4  # gridlines at 0, ¼, ½, ¾ and all of y_max
MAX_DAYS = 3660  # daily_average never builds more days than this (ten years)
# The shortest time axis: on day one, points seconds apart would otherwise spread
# over the whole width (steep strokes) under identical minute labels.
MIN_SPAN = timedelta(hours=1)
MIN_GAP = 4.0  # pixels: points closer than this along x are drawn as one, the later


def _num(value: float) -> str:
    """A short number for labels: 50, 72.5 (never 72.50 or 5e1)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _known(value: float | None) -> float | None:
    # NaN or ±inf is no measurement either: drawn as a gap like None.
    return value if value is not None and math.isfinite(value) else None


def _day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d")


def _utc(when: datetime) -> datetime:
    # Naive times are taken as UTC (what pulsehook stores), never as local time.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _normal(points: Sequence[Point]) -> list[Point]:
    return [(_utc(t), v) for t, v in points]


def describe(title: str, points: Sequence[Point]) -> str:
    """The data in one sentence: what the chart's aria-label says."""
    points = _normal(points)
    known = [(t, k) for t, v in points if (k := _known(v)) is not None]
    if not known:
        return f"{title}: no data."
    values = [v for _, v in known]
    times = [t for t, _ in points]
    first, last = _day(min(times)), _day(max(times))
    span = f"on {first}" if first == last else f"from {first} to {last}"
    # The last of a stable sort: of two scores at the same instant, the later-listed one.
    latest = sorted(known, key=lambda p: p[0])[-1][1]
    gaps = len(points) - len(known)
    text = (
        f"{title}: {len(values)} {'point' if len(values) == 1 else 'points'} {span}; "
        f"latest {_num(latest)}, lowest {_num(min(values))}, highest {_num(max(values))}"
    )
    return text + (f"; {gaps} without a score." if gaps else ".")


def _open(width: int, height: int, title: str, label: str, css: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css}" role="img"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' aria-label="{escape(label)}">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(label)}</desc>",
    ]


def _segments(points: Sequence[Point]) -> list[list[tuple[datetime, float]]]:
    """Runs of known values, split where a value is missing."""
    runs: list[list[tuple[datetime, float]]] = [[]]
    for when, value in sorted(points, key=lambda p: p[0]):
        known = _known(value)
        if known is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((when, known))
    return [run for run in runs if run]


class _Scale:
    """Maps (time, value) into a plot box. One instant only, with no ``until``, is
    drawn in the middle; otherwise the axis runs to ``until`` (now) when later than
    the last point, and spans at least MIN_SPAN, ending at its last instant."""

    def __init__(
        self,
        points: Sequence[Point],
        box: tuple[float, float, float, float],
        y_max: float,
        until: datetime | None = None,
    ):
        self.x0, self.y0, self.x1, self.y1 = box
        times = [t for t, _ in points]
        first, last = min(times), max(times)
        if until is not None and _utc(until) > last:
            last = _utc(until)
        if last > first and last - first < MIN_SPAN:
            first = last - MIN_SPAN
        self.t0 = first
        self.span = (last - first).total_seconds()
        self.y_max = y_max

    def x(self, when: datetime) -> float:
        if self.span <= 0:
            return (self.x0 + self.x1) / 2
        return self.x0 + (when - self.t0).total_seconds() / self.span * (self.x1 - self.x0)

    def y(self, value: float) -> float:
        clamped = min(max(value, 0.0), self.y_max)
        return self.y1 - clamped / self.y_max * (self.y1 - self.y0)


def _lines(
    points: Sequence[Point], scale: _Scale, dot: float, until: datetime | None = None
) -> list[str]:
    out = []
    runs = _segments(points)
    if (
        runs
        and until is not None
        and _utc(until) > runs[-1][-1][0]
        and _known(sorted(points, key=lambda p: p[0])[-1][1]) is not None
    ):
        # A score holds until it changes: the last one is drawn on to now.
        runs[-1] = [*runs[-1], (_utc(until), runs[-1][-1][1])]
    for run in runs:
        coords: list[tuple[float, float]] = []
        for t, v in run:
            cx, cy = scale.x(t), scale.y(v)
            if coords and cx - coords[-1][0] < MIN_GAP:
                coords[-1] = (coords[-1][0], cy)  # one pixel column: the later value
            else:
                coords.append((cx, cy))
        if len(coords) == 1:
            (cx, cy) = coords[0]
            out.append(f'<circle class="dot" cx="{cx:.1f}" cy="{cy:.1f}" r="{dot}"/>')
        else:
            text = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            out.append(f'<polyline class="line" fill="none" points="{text}"/>')
    return out


def line_chart(
    points: list[Point],
    *,
    width: int = 640,
    height: int = 220,
    title: str,
    y_max: float = 100,
    until: datetime | None = None,
) -> str:
    """A line over time with a labelled value axis (0..y_max) and time labels: times
    of day when it spans under a day, else dates, never two alike. ``until`` (now)
    extends the axis and the last score to it."""
    if y_max <= 0:
        raise ValueError("y_max must be positive")
    points = _normal(points)
    label = describe(title, points)
    top, right, bottom, left = MARGIN
    x0, y0, x1, y1 = left, top, max(width - right, left + 1), max(height - bottom, top + 1)
    out = _open(width, height, title, label, "chart")
    for i in range(Y_TICKS + 1):
        value = y_max * i / Y_TICKS
        y = y1 - (y1 - y0) * i / Y_TICKS
        out.append(f'<line class="grid" x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick" x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_num(value)}</text>"
        )
    out.append(f'<line class="axis" x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}"/>')
    if not any(_known(v) is not None for _, v in points):
        out.append(
            f'<text class="empty" x="{(x0 + x1) / 2:.1f}" y="{(y0 + y1) / 2:.1f}"'
            ' text-anchor="middle">No data yet</text>'
        )
        return "".join([*out, "</svg>"])
    scale = _Scale(points, (x0, y0, x1, y1), y_max, until)
    out.extend(_lines(points, scale, dot=3.5, until=until))
    first, last = scale.t0, scale.t0 + timedelta(seconds=scale.span)
    fmt = "%H:%M" if 0 < scale.span < 86_400 else "%Y-%m-%d"
    ty = height - 8
    if scale.span <= 0:
        ticks = [((x0 + x1) / 2, "middle", first)]
    else:
        middle = first + (last - first) / 2
        ticks = [(float(x0), "start", first), ((x0 + x1) / 2, "middle", middle)]
        ticks.append((float(x1), "end", last))
    shown: set[str] = set()
    for x, anchor, when in ticks:
        text = when.strftime(fmt)
        if text in shown:  # a two-day span's middle can fall on a day already labelled
            continue
        shown.add(text)
        if fmt == "%H:%M" and when is ticks[-1][2]:
            text += " UTC"  # times of day are UTC's, whatever zone the page's times are in
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{ty}" text-anchor="{anchor}">{escape(text)}</text>'
        )
    return "".join([*out, "</svg>"])


def sparkline(
    points: list[Point],
    *,
    width: int = 120,
    height: int = 28,
    title: str,
    y_max: float = 100,
    until: datetime | None = None,
) -> str:
    """A word-sized line without axes (0..y_max), the latest value marked with a dot;
    ``until`` as for line_chart."""
    if y_max <= 0:
        raise ValueError("y_max must be positive")
    points = _normal(points)
    label = describe(title, points)
    out = _open(width, height, title, label, "spark")
    out.append(f'<line class="grid" x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}"/>')
    if not any(_known(v) is not None for _, v in points):
        return "".join([*out, "</svg>"])
    scale = _Scale(points, (3.0, 3.0, width - 3.0, height - 3.0), y_max, until)
    out.extend(_lines(points, scale, dot=2.5, until=until))
    when, value = sorted(
        ((t, k) for t, v in points if (k := _known(v)) is not None), key=lambda p: p[0]
    )[-1]
    out.append(
        f'<circle class="dot last" cx="{scale.x(when):.1f}" cy="{scale.y(value):.1f}" r="2.5"/>'
    )
    return "".join([*out, "</svg>"])


def daily_average(
    series: Mapping[str, Sequence[Point]], *, until: date | None = None
) -> list[Point]:
    """The average over series per day, each series carrying its last score forward.

    A repository whose score did not change for a week has no new rows, but it
    still had that score every day: averaging only the rows of each day would
    let one busy repository stand for the whole ecosystem. Days before a series
    begins leave it out; a day where no series has a score is a gap (None).
    """
    ordered = {
        name: sorted(((_utc(t), v) for t, v in pts), key=lambda p: p[0])
        for name, pts in series.items()
        if pts
    }
    if not ordered:
        return []
    start = min(pts[0][0] for pts in ordered.values()).date()
    end = max(pts[-1][0] for pts in ordered.values()).date()
    if until is not None and until > end:
        end = until
    start = max(start, end - timedelta(days=MAX_DAYS))
    out: list[Point] = []
    cursors = dict.fromkeys(ordered, 0)
    current: dict[str, float | None] = {}
    day = start
    while day <= end:
        cutoff = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        for name, pts in ordered.items():
            i = cursors[name]
            while i < len(pts) and pts[i][0] < cutoff:
                current[name] = _known(pts[i][1])
                i += 1
            cursors[name] = i
        known = [v for v in current.values() if v is not None]
        average = round(sum(known) / len(known), 1) if known else None
        out.append((datetime.combine(day, time(), tzinfo=UTC), average))
        day += timedelta(days=1)
    return out
