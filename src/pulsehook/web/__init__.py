"""HTTP layer: reads requests, calls the ingest/store code, renders JSON."""
