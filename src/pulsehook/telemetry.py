"""What the service tells Prometheus: one registry per app, rendered at ``GET /metrics``.

Events are counted where they happen, after what they report is committed (a
delivery answered, an alert change, a notice sent); each count is an increment
in memory, nothing on the webhook path waits for it. Figures kept in the store
(what waits, the outbox, the scan's last round, the file sizes) are read when
scraped and handed to the collectors as data, so a scrape shows the store's
truth, restarts included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .clock import parse_iso
from .github.normalize import NORMALIZERS
from .store.vitals import Vitals

# Answer to a channel's acceptance: most alerts take milliseconds, a backlog minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900)


def event_label(event: str | None) -> str:
    """A label value for an event name from a request: known ones, else ``other``
    (a sender must not be able to mint time series)."""
    return event if event in NORMALIZERS else "other"


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


class RecoveryCollector(Collector):
    """What recovery remembers (``store.redeliveries.overview``), as gauges."""

    def __init__(self) -> None:
        self.figures: Mapping[str, Any] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self.figures
        if figures is None:
            return
        kept = GaugeMetricFamily(
            "pulsehook_redelivery_requests_remembered",
            "Missed deliveries asked for (or found expired), by where they stand now.",
            labels=["outcome"],
        )
        for outcome, count in sorted((figures.get("requests") or {}).items()):
            kept.add_metric([str(outcome)], count)
        yield kept
        last = figures.get("last_pass") or {}
        for value, name, text in (
            (
                last.get("at"),
                "pulsehook_recovery_last_pass_timestamp_seconds",
                "When the last recovery pass ran.",
            ),
            (
                figures.get("last_recovered_at"),
                "pulsehook_recovery_last_recovered_timestamp_seconds",
                "When a delivery asked for was last found stored.",
            ),
        ):
            when = _epoch(value)
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


class StoreCollector(Collector):
    """What waits in the store, and how large it is, as read at the scrape."""

    def __init__(self) -> None:
        self.vitals: Vitals | None = None
        self.now: float | None = None
        self.files: dict[str, int] = {}  # "database" / "wal" -> bytes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        vitals = self.vitals
        if vitals is not None:
            yield GaugeMetricFamily(
                "pulsehook_deliveries_pending", "Deliveries stored, not yet processed.",
                value=vitals.pending,
            )  # fmt: skip
            yield GaugeMetricFamily(
                "pulsehook_deliveries_failed", "Deliveries whose processing failed.",
                value=vitals.failed,
            )  # fmt: skip
            oldest = _epoch(vitals.oldest_pending)
            lag = 0.0 if oldest is None or self.now is None else max(0.0, self.now - oldest)
            yield GaugeMetricFamily(
                "pulsehook_processing_lag_seconds",
                "How long the longest-waiting stored delivery has waited to be processed.",
                value=lag,
            )
            outbox = GaugeMetricFamily(
                "pulsehook_outbox_notices",
                "Notices waiting (pending) or given up on (parked), by channel.",
                labels=["channel", "status"],
            )
            for (channel, status), count in sorted(vitals.outbox.items()):
                outbox.add_metric([channel, status], count)
            yield outbox
        sizes = GaugeMetricFamily(
            "pulsehook_database_bytes", "Size of the database file and its WAL.", labels=["file"]
        )
        for name, size in sorted(self.files.items()):
            sizes.add_metric([name], size)
        yield sizes


class Telemetry:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self.deliveries = Counter(
            "pulsehook_deliveries",
            "Webhook deliveries answered, by event and outcome.",
            ["event", "outcome"],
            registry=registry,
        )
        self.processing_errors = Counter(
            "pulsehook_processing_errors",
            "Deliveries whose processing failed, by event.",
            ["event"],
            registry=registry,
        )
        self.alert_changes = Counter(
            "pulsehook_alert_changes",
            "Alert notices committed, by rule and kind (firing, repeat, resolved).",
            ["rule", "kind"],
            registry=registry,
        )
        self.rule_errors = Counter(
            "pulsehook_rule_errors",
            "Rule evaluations that raised, by rule.",
            ["rule"],
            registry=registry,
        )
        self.notices = Counter(
            "pulsehook_notices",
            "Notice send attempts, by channel and outcome (sent, retry, parked, merged).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.alert_latency = Histogram(
            "pulsehook_alert_latency_seconds",
            "From a delivery's answer to the channel accepting the notice it caused.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.redeliveries = Counter(
            "pulsehook_redelivery_requests",
            "Redelivery requests and what came of them, by outcome (requested, refused,"
            " failed, recovered, expired, abandoned).",
            ["outcome"],
            registry=registry,
        )
        self.store = StoreCollector()
        self.scan = ScanCollector()
        self.recovery = RecoveryCollector()
        registry.register(self.store)
        registry.register(self.scan)
        registry.register(self.recovery)

    def render(self) -> bytes:
        return generate_latest(self.registry)
