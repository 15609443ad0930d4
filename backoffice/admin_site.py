"""The admin site: django-otp's two-factor sign-in wherever ``ADMIN_REQUIRE_OTP`` (DEBUG off).

A staff member then needs a confirmed device (TOTP, or a static token for the first sign-in:
``manage.py addstatictoken <username>``) and a valid token with the password; a session that
was not verified with one sees no admin page. With DEBUG on (the demo) the password suffices.

Every admin page builds the list of all registered models for the navigation sidebar (about sixty,
two URL reversals and four permission checks each): a fifth of a list page's time. The list depends
only on who asks (superuser or not, their permissions) and on what is registered, so it is built once
per such combination and kept for the process.
"""

from typing import ClassVar

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.utils.translation import get_language
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

# Kept per process: a new combination of permissions, language or registrations adds an entry.
APP_LIST_CACHE_SIZE = 256


class StaffAdminSite(OTPAdminSite):
    _app_lists: ClassVar[dict] = {}

    def get_app_list(self, request, app_label=None):
        # The ModelAdmins' permission hooks here read only the user's flags and permissions, so these
        # (with the language and the registrations) are the whole key.
        user = request.user
        who = (
            ("superuser", user.is_active)
            if user.is_superuser
            else (user.is_active, user.is_staff, frozenset(user.get_all_permissions()))
        )
        # The ModelAdmin objects themselves, not their ids: an admin registered anew (tests do) is a new key.
        key = (app_label, who, get_language(), tuple(self._registry.items()))
        apps = self._app_lists.get(key)
        if apps is None:
            if len(self._app_lists) >= APP_LIST_CACHE_SIZE:
                self._app_lists.clear()
            apps = self._app_lists[key] = super().get_app_list(request, app_label)
        # Pages may annotate what they are given: each gets its own copy of the dicts.
        return [{**app, "models": [dict(model) for model in app["models"]]} for app in apps]

    @property
    def login_form(self):
        return OTPAdminAuthenticationForm if settings.ADMIN_REQUIRE_OTP else AdminAuthenticationForm

    @property
    def login_template(self):
        return OTPAdminSite.login_template if settings.ADMIN_REQUIRE_OTP else None

    def has_permission(self, request):
        if settings.ADMIN_REQUIRE_OTP:
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)
