def sync_note(result) -> str:
    """The event's note for a subscription sync (shown in the admin's webhook inbox)."""
    sub = result.subscription
    return f"subscription {sub.pk} {sub.state}" + (" (older event)" if result.stale else "")
