"""pulsehook: keeps the pulse of a GitHub ecosystem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["EcosystemMonitor", "__version__", "create_app"]

if TYPE_CHECKING:
    from .app import create_app
    from .monitor import EcosystemMonitor


def __getattr__(name: str) -> Any:
    # Lazy, so ``import pulsehook`` stays cheap for the CLI's --help.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "EcosystemMonitor":
        from .monitor import EcosystemMonitor

        return EcosystemMonitor
    raise AttributeError(name)
