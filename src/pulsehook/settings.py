"""One typed Settings object, read from flags and the environment.

Environment names take the ``PULSEHOOK_`` prefix, except the two the seed
already used: ``GITHUB_TOKEN`` and ``PULSE_SCAN_INTERVAL``. Nothing here runs
at import time; ``Settings()`` is built by the CLI (or a test) and handed to
``create_app``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError
from .schedule.maths import parse_duration
from .summary.publish import Target as PublishTarget

SECRET_FILE = "webhook_secret"  # noqa: S105 - a file name, not a secret
MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PULSEHOOK_", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    rules_dir: Path = Path("rules")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    debug: bool = False

    # Comma-separated; every one of them is accepted, so a secret can be rotated
    # by adding the new one, switching GitHub over, then removing the old one.
    webhook_secret: SecretStr | None = None
    insecure: bool = Field(
        default=False,
        description="accept unsigned deliveries (local development only)",
    )
    max_body_bytes: int = 25 * MIB

    # "normal": a commit survives a killed process (WAL); "full": also power loss.
    synchronous: Literal["normal", "full"] = "normal"
    busy_timeout_ms: int = 5000
    # Group commit: deliveries arriving together share one transaction.
    batch_max: int = 256
    worker: bool = True

    # Protects changes through the API (silences); reads too once set. See README.
    api_token: SecretStr | None = None

    # Alerting. Digests and recurring silences run in this timezone.
    timezone: str = "UTC"
    flap_interval: str = "5m"  # at most one notice per alert subject per interval
    retry_base_seconds: float = 10.0
    retry_cap_seconds: float = 600.0
    retry_max_age_seconds: float = 86400.0  # then a notice is parked with its last error

    # The status summary (pulseox-compatible).
    summary_owner: str = "pulsehook"  # owner/repo the summary is served as
    summary_repo: str = "summary"
    summary_debounce_seconds: float = 0.25
    pulseox_prefix: str = "/pulseox"  # GitHub-contents-compatible API for pulseox clients
    # Tokens accepted from pulseox clients and heartbeat pings (comma-separated).
    heartbeat_tokens: SecretStr | None = None
    # Publishing the summary to a GitHub repository (optional): "owner/repo".
    publish_repo: str | None = None
    publish_directory: str = ""
    publish_branch: str = "main"
    publish_interval_seconds: float = 60.0
    github_api_url: str = "https://api.github.com"

    # GitHub scan: an organisation (or user) and/or repositories ("owner/name,owner/name").
    scan_org: str | None = None
    scan_repos: str = ""

    github_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_TOKEN", "PULSEHOOK_GITHUB_TOKEN")
    )
    scan_interval: int = Field(
        default=3600,
        validation_alias=AliasChoices("PULSE_SCAN_INTERVAL", "PULSEHOOK_SCAN_INTERVAL"),
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pulsehook.db"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("flap_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    def secrets(self) -> list[bytes]:
        """The accepted webhook secrets, in the order given."""
        if self.webhook_secret is None:
            return []
        raw = self.webhook_secret.get_secret_value()
        return [s.strip().encode() for s in raw.split(",") if s.strip()]

    def scan_repo_list(self) -> list[str]:
        return [r.strip() for r in self.scan_repos.split(",") if r.strip()]

    def heartbeat_token_list(self) -> list[bytes]:
        if self.heartbeat_tokens is None:
            return []
        raw = self.heartbeat_tokens.get_secret_value()
        return [t.strip().encode() for t in raw.split(",") if t.strip()]

    def publish_target(self) -> PublishTarget | None:
        """Where to publish the summary, or None; ConfigError if half configured."""
        if not self.publish_repo:
            return None
        owner, _, repo = self.publish_repo.partition("/")
        if not owner or not repo:
            raise ConfigError("PULSEHOOK_PUBLISH_REPO must be 'owner/repo'")
        if self.github_token is None:
            raise ConfigError("publishing the summary needs GITHUB_TOKEN")
        return PublishTarget(
            api_url=self.github_api_url,
            owner=owner,
            repo=repo,
            directory=self.publish_directory,
            branch=self.publish_branch,
            token=self.github_token.get_secret_value(),
            min_interval=timedelta(seconds=self.publish_interval_seconds),
        )

    def require_secret(self) -> None:
        if not self.secrets() and not self.insecure:
            raise ConfigError(
                "no webhook secret: set PULSEHOOK_WEBHOOK_SECRET, or run with --insecure "
                "for local development only"
            )


def ensure_secret(settings: Settings) -> tuple[Settings, str | None]:
    """Give ``settings`` a webhook secret: from the environment, else the data dir.

    A secret generated here is stored (mode 0600) in the data directory so it
    survives restarts. Returns the new settings and, only when the secret was
    generated just now, the secret itself so the caller can show it once.
    """
    if settings.secrets() or settings.insecure:
        return settings, None
    path = settings.data_dir / SECRET_FILE
    generated: str | None = None
    if path.exists():
        value = path.read_text().strip()
        if not value:
            raise ConfigError(f"{path} is empty; delete it to generate a new secret")
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32)
        path.touch(mode=0o600)
        path.write_text(value + "\n")
        generated = value
    return settings.model_copy(update={"webhook_secret": SecretStr(value)}), generated
