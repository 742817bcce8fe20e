"""The scheduler: held notices, digests, reminders, deadlines and the daily work."""
