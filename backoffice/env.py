"""The environment, read so that a deployment fails closed.

Settings read every variable through :class:`Environment`. A variable production cannot
do without is asked for with :meth:`Environment.required`; when it is unset the name is
noted and :meth:`Environment.check` stops start-up with one ``ImproperlyConfigured``
naming every missing variable, so a deploy with a typo never runs on a fallback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}

# What an enabled payment provider must be given (PAYMENT_PROVIDERS_ENABLED lists the enabled ones).
PROVIDER_REQUIRED = {
    # Server-side API calls (purchases, refunds, cancel, pause, extend, resync, Connect payouts)
    # and webhook signatures.
    "stripe": ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"),
    # Notification and transaction JWS verification (the app's bundle id, Apple's roots, the app's
    # Apple id in Production), and the App Store Server API key (notification history for missed
    # notifications, extensions).
    "app_store": (
        "APP_STORE_BUNDLE_ID",
        "APP_STORE_APP_APPLE_ID",
        "APP_STORE_ROOT_CERTS",
        "APP_STORE_KEY_ID",
        "APP_STORE_ISSUER_ID",
        "APP_STORE_PRIVATE_KEY_PATH",
    ),
    # RTDN authentication (the push URL's token: without it any caller could post notifications)
    # and the Play Developer API, which holds the truth an RTDN only points at.
    "google_play": ("GOOGLE_PLAY_PACKAGE_NAME", "GOOGLE_PLAY_PUSH_TOKEN", "GOOGLE_PLAY_CREDENTIALS_FILE"),
}


class Environment:
    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        self.missing: list[str] = []

    def get(self, name: str, default: str = "") -> str:
        return self.environ.get(name, default).strip()

    def get_int(self, name: str, default: int) -> int:
        value = self.get(name)
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None

    def get_bool(self, name: str, default: bool = False) -> bool:
        value = self.environ.get(name)
        if value is None:
            return default
        value = value.strip().lower()
        if value not in TRUE | FALSE:
            raise ImproperlyConfigured(f"{name} must be 1 or 0, not {value!r}.")
        return value in TRUE

    def get_list(self, name: str, default: str = "") -> list[str]:
        return [item.strip() for item in self.environ.get(name, default).split(",") if item.strip()]

    def required(self, name: str) -> str:
        """The variable's value; unset or empty, its name joins the list :meth:`check` reports."""
        value = self.get(name)
        if not value and name not in self.missing:
            self.missing.append(name)
        return value

    def check(self) -> None:
        if self.missing:
            raise ImproperlyConfigured(
                "Missing environment variables: "
                + ", ".join(self.missing)
                + ". Nothing falls back to a demo default with DEBUG off (README, Configuration). A payment"
                " provider this deployment does not use is left out of PAYMENT_PROVIDERS_ENABLED; a local"
                " PostgreSQL for DATABASE_URL: python -m backoffice.embedded_db url."
            )


def enabled_providers(env: Environment) -> list[str]:
    """PAYMENT_PROVIDERS_ENABLED: comma-separated names; unset means all of them, empty or ``none`` none."""
    raw = env.environ.get("PAYMENT_PROVIDERS_ENABLED")
    if raw is None:
        return list(PROVIDER_REQUIRED)
    names = [] if raw.strip().lower() == "none" else env.get_list("PAYMENT_PROVIDERS_ENABLED")
    unknown = [n for n in names if n not in PROVIDER_REQUIRED]
    if unknown:
        raise ImproperlyConfigured(
            f"PAYMENT_PROVIDERS_ENABLED names unknown providers {unknown}; known: {', '.join(PROVIDER_REQUIRED)}."
        )
    return names


def require_provider_credentials(env: Environment, providers: list[str]) -> None:
    for name in providers:
        for variable in PROVIDER_REQUIRED[name]:
            # Apple's verifier needs the app's Apple id in Production only (Sandbox and Xcode go without).
            if variable == "APP_STORE_APP_APPLE_ID" and env.get("APP_STORE_ENVIRONMENT", "Production") != "Production":
                continue
            env.required(variable)
