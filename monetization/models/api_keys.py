import hashlib
import secrets

from django.conf import settings
from django.db import models

from monetization import clock


class ApiKey(models.Model):
    """A client app's credential. Only a SHA-256 of the secret is stored.

    The key has the form ``bo_<prefix>_<secret>``; the prefix finds the row,
    the hash proves possession. Keys are random 256-bit values, so a fast
    hash is enough (no password stretching needed) and keeps the hot path cheap.
    """

    class Scope(models.TextChoices):
        ENTITLEMENTS_READ = "entitlements:read"
        CATALOG_READ = "catalog:read"
        PURCHASES_WRITE = "purchases:write"
        ORGS_WRITE = "orgs:write"
        CREATORS_READ = "creators:read"
        CREATORS_WRITE = "creators:write"
        ENGAGEMENT_WRITE = "engagement:write"
        EVENTS_READ = "events:read"
        SUBSCRIPTIONS_READ = "subscriptions:read"  # the customer center: the acting customer's subscriptions
        SUBSCRIPTIONS_WRITE = "subscriptions:write"  # ... cancel, switch plan, billing portal

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=clock.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """Return (full key, prefix, hash)."""
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        full = f"bo_{prefix}_{secret}"
        return full, prefix, ApiKey.hash_secret(full)
