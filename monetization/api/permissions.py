from rest_framework.permissions import BasePermission

from monetization.api.authentication import ApiClient
from monetization.errors import ErrorCode


def require_scope(scope: str) -> type[BasePermission]:
    """Client apps need ``scope``; staff sessions need ``perm`` (or are refused)."""

    class HasScope(BasePermission):
        required_scope = scope  # decided from request.user alone (the WSGI fast path relies on it)
        message = f"This API key lacks the '{scope}' scope."
        code = ErrorCode.API_KEY_SCOPE_MISSING

        def has_permission(self, request, view):
            user = request.user
            if isinstance(user, ApiClient):
                return scope in user.scopes
            # Staff reading client-facing data through the browsable API / support tools.
            return bool(user and user.is_authenticated and user.is_staff)

    HasScope.__name__ = f"HasScope[{scope}]"
    return HasScope


class StaffPermission(BasePermission):
    """A staff session holding every Django permission in ``view.required_perms``."""

    code = ErrorCode.PERMISSION_DENIED

    def has_permission(self, request, view):
        user = request.user
        if isinstance(user, ApiClient) or not (user and user.is_authenticated and user.is_staff):
            return False
        perms = getattr(view, "required_perms", ())
        return user.has_perms(perms)
