"""Outbound events: the catalogue, signing, sinks and delivery (the writer is monetization.services.outbox)."""
