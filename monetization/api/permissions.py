from rest_framework.permissions import BasePermission

from monetization.api.authentication import ApiClient
from monetization.errors import ErrorCode


def require_scope(scope: str) -> type[BasePermission]:
    """Only a client app's API key holding ``scope`` passes. A staff session is refused: these
    endpoints act for customers (engagement, org seats, purchases), and staff act through the
    staff API and the admin, where every action is permission-checked and audited."""

    class HasScope(BasePermission):
        required_scope = scope  # decided from request.user alone (the WSGI fast path relies on it)
        message = f"This API key lacks the '{scope}' scope."
        code = ErrorCode.API_KEY_SCOPE_MISSING

        def has_permission(self, request, view):
            user = request.user
            return isinstance(user, ApiClient) and scope in user.scopes

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
        # A staff view that names no permission is a mistake, not an open door.
        return bool(perms) and user.has_perms(perms)
