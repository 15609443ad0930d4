from rest_framework.throttling import SimpleRateThrottle

from monetization.api.authentication import ApiClient


class ClientThrottle(SimpleRateThrottle):
    """One bucket per API key, per staff user, or per anonymous IP."""

    scope = "client"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(user, ApiClient):
            ident = f"key:{user.key_id}"
        elif user is not None and getattr(user, "is_authenticated", False):
            ident = f"user:{user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
