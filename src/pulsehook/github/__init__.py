"""GitHub-facing code: signature checks and normalization (pure)."""
