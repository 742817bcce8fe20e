"""Channels: one small transport per kind, on top of ``notifiers``."""
