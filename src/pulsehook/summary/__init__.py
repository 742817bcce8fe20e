"""The pulseox-compatible status summary."""
