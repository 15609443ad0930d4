"""The admin site: django-otp's two-factor sign-in wherever ``ADMIN_REQUIRE_OTP`` (DEBUG off).

A staff member then needs a confirmed device (TOTP, or a static token for the first sign-in:
``manage.py addstatictoken <username>``) and a valid token with the password; a session that
was not verified with one sees no admin page. With DEBUG on (the demo) the password suffices.
"""

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class StaffAdminSite(OTPAdminSite):
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
