"""Alert lifecycle, the durable outbox, the dispatcher and digests."""
