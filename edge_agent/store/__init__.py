"""The device store: SQLite (WAL) sightings, reports, outbox, photos by sha256, lifecycle."""
