"""One typed Settings object, read from flags and the environment.

Environment names take the ``PULSEHOOK_`` prefix, except the two the seed
already used: ``GITHUB_TOKEN`` and ``PULSE_SCAN_INTERVAL``. Nothing here runs
at import time; ``Settings()`` is built by the CLI (or a test) and handed to
``create_app``.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigError
from .timing import parse_duration

SECRET_FILE = "webhook_secret"  # noqa: S105 - a file name, not a secret
API_TOKEN_FILE = "api_token"  # noqa: S105 - a file name, not a secret
MIB = 1024 * 1024
# A GitHub owner or repository name, as a public_repos entry spells it.
_GITHUB_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PULSEHOOK_",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,  # a refused value may be a secret: never echo it
    )

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    rules_dir: Path = Path("rules")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object per line
    debug: bool = False

    # Comma-separated; every one of them is accepted, so a secret can be rotated
    # by adding the new one, switching GitHub over, then removing the old one.
    webhook_secret: SecretStr | None = None
    insecure: bool = Field(
        default=False,
        description="accept unsigned deliveries (local development only)",
    )
    max_body_bytes: int = 25 * MIB
    # A delivery waits at most this long for its commit, then gets 503: an answer
    # past GitHub's 10 s timeout is recorded as a failure even when it was stored.
    answer_timeout_seconds: float = Field(default=5.0, gt=0, le=9)
    # Bodies over 1 MiB read at once; more wait briefly, then get 503 busy.
    max_large_bodies: int = Field(default=4, ge=1)

    # "normal": a commit survives a killed process (WAL); "full": also power loss.
    synchronous: Literal["normal", "full"] = "normal"
    busy_timeout_ms: int = 5000
    # Group commit: deliveries arriving together share one transaction.
    batch_max: int = 256
    worker: bool = True

    # Every API write needs it; API reads and the dashboard too unless open_reads.
    # Generated on first start (data_dir/api_token) when not given. See README.
    api_token: SecretStr | None = None
    # Opt-out: API reads and the dashboard without the token (a trusted network).
    open_reads: bool = False
    # A dashboard sign-in lasts this long, then the token is asked for again.
    session_max_age_seconds: int = Field(default=7 * 86400, gt=0)
    # Repositories whose badges answer without the token: "owner/name,owner/*".
    # Read as a tuple of lowercased entries (GitHub's names are case-insensitive).
    public_repos: Annotated[tuple[str, ...], NoDecode] = ()

    # Alerting. Digests and recurring silences run in this timezone.
    timezone: str = "UTC"
    flap_interval: str = "5m"  # at most one notice per alert subject per interval
    retry_base_seconds: float = 10.0
    retry_cap_seconds: float = 600.0
    retry_max_age_seconds: float = 86400.0  # then a notice is parked with its last error

    # Where people reach this service (https://pulse.example.com): grouped notices
    # link to its alert list. Unset: they name the dashboard's Alerts page instead.
    public_url: str | None = None

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
        gt=0,
        validation_alias=AliasChoices("PULSE_SCAN_INTERVAL", "PULSEHOOK_SCAN_INTERVAL"),
    )
    # At most this share of each hour's rate limit goes to the scan; the rest is left
    # to everything else that uses the token (publishing, recovery, people's scripts).
    # Of each rate-limit window; None: the scan's own default (a quarter left to others).
    scan_share: float | None = Field(default=None, gt=0, le=1)
    # Every repository is rescanned at least this often (free when nothing changed).
    scan_cycle_hours: float = Field(default=24, gt=0)
    # A scheduled workflow watched from its file may report this late: GitHub delays
    # scheduled runs under load (README, "Scheduled workflows").
    schedule_grace_seconds: float = Field(default=3600, ge=0)
    # A scheduled workflow of a public repository idle this long is warned of; GitHub
    # disables it at 60 days.
    inactivity_warning_days: int = Field(default=50, ge=1, le=59)
    # Between scans, dependency graphs a push moved are read at most this often.
    graph_refresh_seconds: float = Field(default=30, gt=0)
    # Recovery looks this often for hooks first seen, requests to follow up and
    # outages over (README, "Missed deliveries").
    recovery_check_seconds: float = Field(default=30, gt=0)
    # Deliveries and history older than this are pruned (0 keeps everything).
    retention_days: int = Field(default=90, ge=0)

    # PostgreSQL instead of the SQLite file in the data directory: the store of
    # several replicas (README, "Running several replicas"). A secret: it may
    # carry a password, so it is never logged as given.
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "PULSEHOOK_DATABASE_URL")
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pulsehook.db"

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL store's URL, or None for the SQLite file at ``db_path``."""
        return self.database_url.get_secret_value() if self.database_url else None

    @property
    def database(self) -> str:
        """Where the store is, for logs: the SQLite file, or the URL without its password."""
        return redacted(self.postgres_url) if self.postgres_url else str(self.db_path)

    @field_validator("database_url")
    @classmethod
    def _postgresql(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        scheme = value.get_secret_value().partition("://")[0]
        if scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"must be a postgresql:// URL, not {scheme}://"
                " (leave it unset for the SQLite file in the data directory)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("api_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token would let an empty "Bearer" in.
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError(
                "the API token must have at least 16 characters (unset it to generate one)"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL (e.g. https://pulse.example.com)")
        return value.rstrip("/")

    @field_validator("public_repos", mode="before")
    @classmethod
    def _public_repos(cls, value: object) -> tuple[str, ...]:
        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, list | tuple):
            raise ValueError("give owner/name or owner/* entries, comma-separated")
        found: list[str] = []
        for entry in entries:
            text = str(entry).strip()
            if not text:
                continue
            owner, slash, name = text.lower().partition("/")
            if not slash or not all(
                0 < len(part) <= 100 and part not in (".", "..") and set(part) <= _GITHUB_NAME
                for part in (owner, "x" if name == "*" else name)
            ):
                raise ValueError(f"entry {text!r} is not owner/name or owner/*")
            found.append(f"{owner}/{name}")
        return tuple(dict.fromkeys(found))

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        # GitHub redelivers with the same guid for three days: deduplication needs them.
        if 0 < value < 3:
            raise ValueError("a retention must be 0 (keep everything) or at least 3 days")
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
        """The accepted heartbeat and report tokens, without their scopes."""
        return [token for token, _ in self.heartbeat_scopes()]

    def heartbeat_scopes(self) -> list[tuple[bytes, tuple[str, ...]]]:
        """Each heartbeat and report token with the repositories it covers.

        An entry is ``token`` (every repository) or ``token@pattern;pattern...``, a
        pattern being ``owner/repo``, ``owner/*`` or ``*``: shell-style on the full
        name, lowercased here (GitHub's names are case-insensitive). The scope is
        what follows the last ``@`` (no name holds one), so a token containing
        ``@`` needs a scope: ``to@ken@*``. A malformed scope is a ConfigError that
        names the entry by position only: its text may be part of a secret.
        """
        if self.heartbeat_tokens is None:
            return []
        allowed = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.*?[]!")
        entries = [e.strip() for e in self.heartbeat_tokens.get_secret_value().split(",")]
        scoped: list[tuple[bytes, tuple[str, ...]]] = []
        for number, entry in enumerate((e for e in entries if e), start=1):
            token, _, scope = entry.rpartition("@") if "@" in entry else (entry, "", "*")
            patterns = tuple(p.strip().lower() for p in scope.split(";"))
            if not token.strip() or not all(
                p == "*"
                or (p.count("/") == 1 and "" not in p.split("/") and set(p) - {"/"} <= allowed)
                for p in patterns
            ):
                raise ConfigError(
                    f"PULSEHOOK_HEARTBEAT_TOKENS entry {number}: give token or"
                    " token@owner/repo;owner/*;* (a token containing '@' needs a scope)"
                )
            scoped.append((token.strip().encode(), patterns))
        return scoped

    def require_secret(self) -> None:
        if not self.secrets() and not self.insecure:
            raise ConfigError(
                "no webhook secret: set PULSEHOOK_WEBHOOK_SECRET, or run with --insecure "
                "for local development only"
            )


def _stored_secret(path: Path) -> tuple[str, bool]:
    """The secret kept in ``path``, generated (mode 0600) if the file is missing;
    and whether it was generated just now."""
    if path.exists():
        value = path.read_text().strip()
        if not value:
            raise ConfigError(f"{path} is empty; delete it to generate a new one")
        return value, False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value, True


def ensure_api_token(settings: Settings) -> tuple[Settings, str | None]:
    """Give ``settings`` an API token: from the environment, else the data dir.

    As for the webhook secret: stored (0600) so it survives restarts, and
    returned only when generated just now, for the caller to show once.
    """
    if settings.api_token is not None:
        return settings, None
    value, fresh = _stored_secret(settings.data_dir / API_TOKEN_FILE)
    update = {"api_token": SecretStr(value)}
    return settings.model_copy(update=update), value if fresh else None


def ensure_secret(settings: Settings) -> tuple[Settings, str | None]:
    """Give ``settings`` a webhook secret: from the environment, else the data dir.

    A secret generated here is stored (mode 0600) in the data directory so it
    survives restarts. Returns the new settings and, only when the secret was
    generated just now, the secret itself so the caller can show it once.
    """
    if settings.secrets() or settings.insecure:
        return settings, None
    value, fresh = _stored_secret(settings.data_dir / SECRET_FILE)
    generated = value if fresh else None
    return settings.model_copy(update={"webhook_secret": SecretStr(value)}), generated


def redacted(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
