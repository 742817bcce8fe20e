"""notifiers' providers, looked up once per process.

``notifiers.get_notifier`` scans every installed package's entry points on each
call: about 4 ms, most of a notice's cost on the server's core. Providers keep
no per-message state, so one instance per kind serves every send.
"""

from __future__ import annotations

import functools
from typing import Any

import notifiers


@functools.cache
def provider(kind: str) -> Any:
    """The notifiers provider for ``kind``; NoSuchNotifierError if none is installed."""
    return notifiers.get_notifier(kind, strict=True)


@functools.cache
def optional(kind: str) -> Any | None:
    """The provider for ``kind``, or None when none is installed."""
    return notifiers.get_notifier(kind)
