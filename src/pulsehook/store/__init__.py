"""SQLite state: one writer thread, many readers, numbered migrations."""
