"""Outbound event delivery: signing, sinks and the dispatcher (the writer is monetization.services.outbox,
the catalogue monetization.event_catalogue)."""
