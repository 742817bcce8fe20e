"""What the service tells Prometheus: one registry per app, rendered at ``GET /metrics``.

Figures kept in the store (the scan's last round) are read when scraped and handed
to the collector as data, so a scrape shows the store's truth, restarts included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .clock import parse_iso

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The scan's last round: figure -> (metric, help).
SCAN_GAUGES = {
    "listed": ("pulsehook_scan_repositories", "Repositories the last scan round listed."),
    "scanned": ("pulsehook_scan_scanned_repositories", "Repositories the last round scanned."),
    "backlog": (
        "pulsehook_scan_backlog_repositories",
        "Repositories left for later rounds (pushed to, never scanned or due).",
    ),
    "errors": ("pulsehook_scan_errors", "Errors met by the last scan round."),
    "rate_limit_spent": (
        "pulsehook_scan_rate_limit_spent",
        "Requests the scan spent in the current GitHub rate-limit window.",
    ),
    "rate_limit_share": (
        "pulsehook_scan_rate_limit_share",
        "Requests the scan may spend per GitHub rate-limit window.",
    ),
}


class ScanCollector(Collector):
    """The scan's last round, as gauges; nothing before the first round."""

    def __init__(self) -> None:
        self.figures: Mapping[str, Any] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self.figures
        if figures is None:
            return
        for key, (name, text) in SCAN_GAUGES.items():
            value = figures.get(key)
            if isinstance(value, int | float):
                yield GaugeMetricFamily(name, text, value=value)
        behind = GaugeMetricFamily(
            "pulsehook_scan_behind_repositories",
            "Repositories left for later rounds, by why they need a scan.",
            labels=["reason"],
        )
        for reason, count in sorted((figures.get("behind") or {}).items()):
            behind.add_metric([str(reason)], count)
        yield behind
        for key, name, text in (
            ("at", "pulsehook_scan_last_round_timestamp_seconds", "When the last round ended."),
            (
                "oldest_scan",
                "pulsehook_scan_oldest_timestamp_seconds",
                "The least recent last scan of a listed repository.",
            ),
        ):
            when = _epoch(figures.get(key))
            if when is not None:
                yield GaugeMetricFamily(name, text, value=when)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when: datetime = parse_iso(value)
    except ValueError:
        return None
    return when.timestamp()


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.scan = ScanCollector()
        self.registry.register(self.scan)

    def render(self) -> bytes:
        return generate_latest(self.registry)
