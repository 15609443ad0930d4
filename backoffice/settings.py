"""Settings of the monetization back office.

Everything that differs between the demo, CI and production comes from the
environment, and nothing falls back to a demo default unless asked: with
``DEBUG`` off, every variable production needs (the database, the broker, the
cache, each enabled payment provider's credentials) must be set, and start-up
stops naming each one that is not (``backoffice/env.py``). ``DEBUG=1`` is for
a developer's machine; what it allows when a variable is unset is spelled out
where that variable is read. ``make run`` sets what the demo needs.
"""

import os
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from backoffice.databases import database_settings
from backoffice.env import Environment, enabled_providers, require_provider_credentials

BASE_DIR = Path(__file__).resolve().parent.parent

env = Environment()

DEBUG = env.get_bool("DEBUG", default=False)

# A developer's machine may run without a key of its own; a deployment never does.
SECRET_KEY = env.get("SECRET_KEY") if DEBUG else env.required("SECRET_KEY")
SECRET_KEY = SECRET_KEY or "insecure-demo-key-only-for-local-debug-runs-never-in-production"

# With DEBUG on, the local names Django itself accepts then (kept when the test runner turns DEBUG off).
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
if not DEBUG:
    env.required("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",  # OpClass in index expressions (the trigram search indexes)
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djmoney",
    "django_fsm",
    "django_celery_beat",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "csp",
    "health_check",
    "django_prometheus",
    "monetization",
    "subscriptions",
    "verified_orgs",
    "creators",
]

MIDDLEWARE = [
    # Request counts and latency by view and status (/metrics); its pair is the last but one.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "monetization.middleware.RequestIdMiddleware",
    "monetization.middleware.ApiErrorBodyMiddleware",
    "monetization.middleware.OutageMiddleware",
    "monetization.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: it turns a lockout signalled during sign-in into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "backoffice.urls"
WSGI_APPLICATION = "backoffice.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL everywhere, the demo included (``make run`` starts an embedded one: backoffice/embedded_db.py).
DATABASE_URL = env.required("DATABASE_URL")
# DATABASE_POOLER=pgbouncer when DATABASE_URL names PgBouncer in transaction mode (backoffice/databases.py).
DATABASE_POOLER = env.get("DATABASE_POOLER")
_CONN_MAX_AGE = env.get_int("DB_CONN_MAX_AGE", 60)
DATABASES = {
    "default": database_settings(
        DATABASE_URL or "postgres:///missing", pooler=DATABASE_POOLER, conn_max_age=_CONN_MAX_AGE
    )
}
if DATABASE_POOLER:
    # Session-level state (the outbox dispatcher's advisory lock) needs a connection of its own to
    # PostgreSQL itself, past the pooler (monetization/db_routing.py). In tests, the primary's.
    DATABASES["session"] = {
        **database_settings(env.required("DATABASE_SESSION_URL") or DATABASE_URL, conn_max_age=_CONN_MAX_AGE),
        "TEST": {"MIRROR": "default"},
    }
# A streaming replica for reports, charts and exports (backoffice/db_router.py); the replica's own
# pooler, if any, in DATABASE_REPLICA_POOLER.
DATABASE_REPLICA_URL = env.get("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = {
        **database_settings(
            DATABASE_REPLICA_URL, pooler=env.get("DATABASE_REPLICA_POOLER"), conn_max_age=_CONN_MAX_AGE
        ),
        "TEST": {"MIRROR": "default"},
    }
DATABASE_ROUTERS = ["backoffice.db_router.ReplicaRouter"]
for _alias, _config in DATABASES.items():
    if _config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"The {_alias} database must be PostgreSQL, not {_config['ENGINE']}.")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The role the app runs as in production (DATABASE_URL), granted row access only by the migrations,
# which run as the tables' owner (MIGRATE_DATABASE_URL, see README "Database roles").
DATABASE_APP_ROLE = env.get("DATABASE_APP_ROLE", "backoffice_app")

# The cache is Redis; only a DEBUG run without REDIS_URL keeps it in process.
REDIS_URL = env.get("REDIS_URL") if DEBUG else env.required("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "monetization.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.get("CACHE_KEY_PREFIX", "bo"),
            # An unreachable Redis must fail fast: reads then miss and answer from PostgreSQL.
            "OPTIONS": {
                "socket_connect_timeout": float(os.environ.get("CACHE_CONNECT_TIMEOUT", "0.25")),
                "socket_timeout": float(os.environ.get("CACHE_SOCKET_TIMEOUT", "0.5")),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Staff sign-in ---
# django-axes first: it refuses a locked-out account before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "20"))
# Either locks: the account, from wherever the guesses come; an address, whichever accounts it tries.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = timedelta(hours=int(os.environ.get("AXES_COOLOFF_HOURS", "1")))
AXES_RESET_ON_SUCCESS = True
# A second factor (TOTP, django-otp) for the admin and the staff API, required wherever DEBUG is off.
# The demo (DEBUG on) signs in with a password alone.
ADMIN_REQUIRE_OTP = env.get_bool("ADMIN_REQUIRE_OTP", default=not DEBUG)
OTP_TOTP_ISSUER = env.get("OTP_TOTP_ISSUER", "Monetization back office")
# Staff sessions end after 8 hours and when the browser closes.
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(8 * 3600)))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Content-Security-Policy (django-csp) for the admin's HTML; the JSON API (and its docs page, whose
# Swagger UI comes from our static files but starts from an inline script) carries none.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],  # the admin templates' style attributes
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One date format (backoffice/formats/en/formats.py) and one money format everywhere: "1,234.50 USD",
# grouped, the currency's own decimals (JPY none), its ISO code after (every Money's str(), the admin's lists).
FORMAT_MODULE_PATH = ["backoffice.formats"]
MONEY_FORMAT = {"format": "#,##0.00 ¤¤"}

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security (python manage.py check --deploy is clean with DEBUG off) ---
# DEBUG is a developer's plain-HTTP runserver and the test client: HTTPS-only cookies and redirects
# would lock both out. Anything else is served over HTTPS.
if not DEBUG:
    SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and the metrics scraper call a pod over plain HTTP inside the cluster: no redirect for them.
    SECURE_REDIRECT_EXEMPT = [r"^healthz", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.get_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Bad input (monetization.middleware.RequestGuardMiddleware) and outages ---
REQUEST_BODY_MAX_BYTES = int(os.environ.get("REQUEST_BODY_MAX_BYTES", str(1024 * 1024)))
# Streamed bulk endpoints take more (validated row by row, never loaded whole).
REQUEST_BODY_LIMITS = {"/api/v1/creators/engagement": int(os.environ.get("ENGAGEMENT_BODY_MAX_BYTES", str(2**30)))}
REQUEST_JSON_MAX_DEPTH = 64
WEBHOOK_PATH_PREFIX = "/api/v1/webhooks/"
OUTAGE_RETRY_AFTER = 5  # seconds, in the Retry-After of an outage's 503

# --- API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "monetization.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "monetization.api.throttling.ClientThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        # Per API key: one app's users share its key, so the ceiling is a production app's rate.
        "client": os.environ.get("API_THROTTLE_RATE", "2000/s"),
        # Below it, with a key: per end customer the request acts for, and per calling IP.
        "customer": os.environ.get("API_THROTTLE_CUSTOMER_RATE", "20/s"),
        "client_ip": os.environ.get("API_THROTTLE_IP_RATE", "500/s"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "monetization.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Monetization back office API",
    "DESCRIPTION": "Entitlements, catalog, purchases, webhooks and staff actions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for an enum that several serializers render (the org API and the staff API).
    "ENUM_NAME_OVERRIDES": {"OrgInvoiceStatusEnum": "verified_orgs.models.OrgInvoice.Status"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "monetization.api.schema.postprocess_error_responses",
    ],
    # /api/docs/ serves Swagger UI from our own static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ---
# Only a DEBUG run without a broker (the demo) runs tasks inline, in the caller's process.
CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") if DEBUG else env.required("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# Celery's Django fixup closes the database connection before and after every task unless this is set:
# a new PostgreSQL connection per task, most of a short task's time. Reused for this many tasks instead,
# with Django's own checks before each task (backoffice/celery.py), as for a web request.
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# One message reserved at a time: a worker killed holds no others unacknowledged (they would wait for the
# visibility timeout), and a long task does not sit on messages another worker could take.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis (and SQS) redeliver an unacknowledged message after this long: longer than the longest task
# (a late-acknowledged task still running then would run twice), short enough that a dead worker's
# message comes back in minutes. RabbitMQ redelivers as soon as the dead worker's connection closes.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "300"))}
# A worker's lost broker connection is retried forever, not given up on after 100 tries.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict = {}

# --- Entitlements, API keys, idempotency ---
ENTITLEMENT_CACHE_TTL = int(os.environ.get("ENTITLEMENT_CACHE_TTL", "300"))
# Cache hits of the entitlement endpoint answered ahead of Django (subscriptions/api/fast_path.py);
# inert without the Redis cache.
ENTITLEMENTS_FAST_PATH = env.get_bool("ENTITLEMENTS_FAST_PATH", default=True)
# Cached offerings bodies and customers' arms (subscriptions/services/offerings.py); every edit
# forgets them at once, so this bounds only what no edit announces.
OFFERINGS_CACHE_TTL = int(os.environ.get("OFFERINGS_CACHE_TTL", "3600"))
API_KEY_CACHE_TTL = int(os.environ.get("API_KEY_CACHE_TTL", "60"))
# How often (seconds) each process looks for invalidations a cache outage left pending
# (monetization.services.cache_invalidation): a revocation's bound once Redis is back.
CACHE_INVALIDATION_CHECK_INTERVAL = float(os.environ.get("CACHE_INVALIDATION_CHECK_INTERVAL", "1"))
CELERY_BEAT_SCHEDULE["cache-invalidations-flush"] = {
    "task": "monetization.tasks_cache.cache_invalidations_flush_task",
    "schedule": 5.0,
}
IDEMPOTENCY_KEY_TTL = timedelta(hours=int(os.environ.get("IDEMPOTENCY_KEY_TTL_HOURS", "48")))

# JSON lines with the request id (backoffice/logs.py) unless LOG_FORMAT=text (the default with DEBUG on).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "backoffice.logs.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", **({"formatter": "json"} if LOG_FORMAT == "json" else {})}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
# Workers log through LOGGING above (JSON, with the request id that queued the task), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Provider adapters by name (dotted paths); the demo and the tests use monetization.demo.providers.FakeProvider.
PAYMENT_PROVIDERS = {
    "stripe": os.environ.get("PAYMENT_PROVIDER_STRIPE", "monetization.providers.stripe.StripeProvider"),
    "app_store": os.environ.get("PAYMENT_PROVIDER_APP_STORE", "monetization.providers.app_store.AppStoreProvider"),
    "google_play": os.environ.get(
        "PAYMENT_PROVIDER_GOOGLE_PLAY", "monetization.providers.google_play.GooglePlayProvider"
    ),
}

# --- Provider credentials and webhook verification (secrets only from the environment) ---
STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
# The Connect endpoint's own signing secret (events from creators' connected accounts); optional.
STRIPE_CONNECT_WEBHOOK_SECRET = os.environ.get("STRIPE_CONNECT_WEBHOOK_SECRET", "")
STRIPE_WEBHOOK_TOLERANCE = int(os.environ.get("STRIPE_WEBHOOK_TOLERANCE", "300"))
# The API version our payload parsing is written for (current period lives on subscription items).
STRIPE_API_VERSION = os.environ.get("STRIPE_API_VERSION", "2026-10-28.endive")
# Trusted Apple root certificates (DER or PEM files), comma- or colon-separated paths.
APP_STORE_ROOT_CERTS = os.environ.get("APP_STORE_ROOT_CERTS", "")
APP_STORE_BUNDLE_ID = os.environ.get("APP_STORE_BUNDLE_ID", "")
APP_STORE_APP_APPLE_ID = int(os.environ["APP_STORE_APP_APPLE_ID"]) if os.environ.get("APP_STORE_APP_APPLE_ID") else None
APP_STORE_ENVIRONMENT = os.environ.get("APP_STORE_ENVIRONMENT", "Production")
APP_STORE_KEY_ID = os.environ.get("APP_STORE_KEY_ID", "")
APP_STORE_ISSUER_ID = os.environ.get("APP_STORE_ISSUER_ID", "")
APP_STORE_PRIVATE_KEY_PATH = os.environ.get("APP_STORE_PRIVATE_KEY_PATH", "")
# Customers agreed to share consumption data with Apple: CONSUMPTION_REQUESTs are answered through the API.
APP_STORE_CONSUMPTION_CONSENT = os.environ.get("APP_STORE_CONSUMPTION_CONSENT", "") == "1"
GOOGLE_PLAY_PACKAGE_NAME = os.environ.get("GOOGLE_PLAY_PACKAGE_NAME", "")
# Pub/Sub push subscriptions are configured with ``https://.../webhooks/google-play?token=<this>``.
GOOGLE_PLAY_PUSH_TOKEN = os.environ.get("GOOGLE_PLAY_PUSH_TOKEN", "")
GOOGLE_PLAY_CREDENTIALS_FILE = os.environ.get("GOOGLE_PLAY_CREDENTIALS_FILE", "")
# The payment providers this deployment works with: comma-separated names, unset for all three,
# ``none`` for none. Each enabled one must be given its credentials when DEBUG is off
# (backoffice/env.py says which); a disabled one needs none and its webhook endpoint answers 404.
PAYMENT_PROVIDERS_ENABLED = enabled_providers(env)
if not DEBUG:
    require_provider_credentials(env, PAYMENT_PROVIDERS_ENABLED)
# Play requires acknowledging a purchase within 3 days or it is refunded.
GOOGLE_PLAY_ACKNOWLEDGE_WITHIN = timedelta(days=3)
# An event that fails with a passing error is tried again this many times, with backoff from
# WEBHOOK_RETRY_BASE_SECONDS doubling up to WEBHOOK_RETRY_MAX_SECONDS, then is failed (a person replays it).
# One waiting for its subject keeps waiting (same backoff) for WEBHOOK_WAITING_GIVE_UP_HOURS.
WEBHOOK_APPLY_MAX_RETRIES = int(os.environ.get("WEBHOOK_APPLY_MAX_RETRIES", "8"))
WEBHOOK_RETRY_BASE_SECONDS = float(os.environ.get("WEBHOOK_RETRY_BASE_SECONDS", "5"))
WEBHOOK_RETRY_MAX_SECONDS = float(os.environ.get("WEBHOOK_RETRY_MAX_SECONDS", "600"))
WEBHOOK_WAITING_GIVE_UP_HOURS = float(os.environ.get("WEBHOOK_WAITING_GIVE_UP_HOURS", "72"))
# A stored event not applied this long after it arrived (its task lost) is queued by the sweep, which runs
# every WEBHOOK_SWEEP_INTERVAL seconds and queues at most WEBHOOK_SWEEP_MAX events a run; an event it
# queued is due again after WEBHOOK_SWEEP_LEASE_SECONDS should that task be lost too.
WEBHOOK_RECEIVED_GRACE_SECONDS = float(os.environ.get("WEBHOOK_RECEIVED_GRACE_SECONDS", "5"))
WEBHOOK_SWEEP_INTERVAL = float(os.environ.get("WEBHOOK_SWEEP_INTERVAL", "10"))
WEBHOOK_SWEEP_MAX = int(os.environ.get("WEBHOOK_SWEEP_MAX", "5000"))
WEBHOOK_SWEEP_LEASE_SECONDS = float(os.environ.get("WEBHOOK_SWEEP_LEASE_SECONDS", "30"))
# Stored events are applied by one queued task for all that wait, in batches of this many
# (1 = one at a time), at most this many batches per task before it queues the next.
WEBHOOK_APPLY_BATCH = int(os.environ.get("WEBHOOK_APPLY_BATCH", "100"))
WEBHOOK_APPLY_BATCHES_PER_TASK = int(os.environ.get("WEBHOOK_APPLY_BATCHES_PER_TASK", "20"))
# How long "a task is queued for them" holds, should that task be lost (then the next arrival queues one).
WEBHOOK_APPLY_SCHEDULED_TTL = int(os.environ.get("WEBHOOK_APPLY_SCHEDULED_TTL", "5"))
CELERY_BEAT_SCHEDULE["sweep-webhook-events"] = {
    "task": "monetization.tasks.sweep_webhook_events",
    "schedule": WEBHOOK_SWEEP_INTERVAL,
    # Sweeps queued while no worker ran are dropped, not run back to back when one starts.
    "options": {"expires": WEBHOOK_SWEEP_INTERVAL},
}
CELERY_BEAT_SCHEDULE["acknowledge-play-purchases"] = {
    "task": "subscriptions.acknowledge_play_purchases",
    "schedule": 3600.0,
}
# Deferred revenue of multi-month plans released into revenue day by day (services/revenue_recognition.py).
CELERY_BEAT_SCHEDULE["revenue-recognition"] = {
    "task": "monetization.tasks.revenue_recognize_task",
    "schedule": crontab(hour=0, minute=10),
}
# Finance's daily snapshots: today, yesterday and the days late events marked (services/finance_snapshots.py).
FINANCE_SNAPSHOT_INTERVAL = float(os.environ.get("FINANCE_SNAPSHOT_INTERVAL", "600"))
CELERY_BEAT_SCHEDULE["finance-snapshots-refresh"] = {
    "task": "subscriptions.finance_snapshots_refresh",
    "schedule": FINANCE_SNAPSHOT_INTERVAL,
    # A refresh queued while no worker ran is dropped: the next one covers the same days.
    "options": {"expires": FINANCE_SNAPSHOT_INTERVAL},
}
# The monthly close pack: last month's Finance exports as CSV and XLSX (monetization/exports.py).
FINANCE_CLOSE_PACK_DIR = os.environ.get("FINANCE_CLOSE_PACK_DIR", str(BASE_DIR / "var" / "close-packs"))
CELERY_BEAT_SCHEDULE["finance-close-pack"] = {
    "task": "monetization.tasks.close_pack_write_task",
    "schedule": crontab(day_of_month=1, hour=2, minute=0),
}
# Nightly reconciliation with every provider's books (the drift left is a figure on Finance's dispute queue).
CELERY_BEAT_SCHEDULE["reconcile-providers"] = {
    "task": "subscriptions.reconcile_providers",
    "schedule": crontab(hour=3, minute=30),
}

# verified_orgs: invitation expiry (7 days). Organizations follow their subscription's grace and
# hold through the lifecycle sweep's state hooks.
CELERY_BEAT_SCHEDULE["verified-orgs-expire-invitations"] = {
    "task": "verified_orgs.expire_invitations",
    "schedule": timedelta(minutes=15),
}

# --- Support console: refunds, four-eyes, staff actions ---
# A refund above this amount (per currency) waits for a second staff member's approval.
# A currency not listed always needs approval.
REFUND_APPROVAL_THRESHOLDS = {
    "USD": "100",
    "EUR": "100",
    "GBP": "80",
    "JPY": "15000",
    "INR": "8000",
    "BRL": "500",
}
# The (N+1)th refund for one customer within 30 days waits for approval too.
REFUND_APPROVAL_MAX_PER_CUSTOMER_30D = int(os.environ.get("REFUND_APPROVAL_MAX_PER_CUSTOMER_30D", "3"))
# A purchase presented by, or a provider event naming, another customer than its owner (a restore on a
# new login): "transfer" moves it to that customer (RevenueCat's default), "keep" leaves it with its
# owner (the purchase API answers 409 purchase_owned_by_other_customer). subscriptions.services.transfers.
PURCHASE_OWNERSHIP_RULE = os.environ.get("PURCHASE_OWNERSHIP_RULE", "transfer")
# A refund still "submitted" this long after its provider call may be retried (same idempotency key).
REFUND_SUBMITTED_STUCK_AFTER = timedelta(minutes=int(os.environ.get("REFUND_SUBMITTED_STUCK_AFTER_MINUTES", "15")))

# --- Personal data: erasure ---
# Erasure cancels the subscriptions of these providers through the provider interface. The others
# are listed for Support: App Store subscriptions only the customer can cancel; Play ones too,
# unless Support revokes them (which refunds), a choice erasure does not make for them.
ERASURE_CANCEL_PROVIDERS = tuple(
    p for p in os.environ.get("ERASURE_CANCEL_PROVIDERS", "stripe,internal").split(",") if p
)

CELERY_BEAT_SCHEDULE["idempotency-keys-purge"] = {
    "task": "monetization.tasks_support.idempotency_keys_purge_task",
    "schedule": timedelta(hours=1),
}
CELERY_IMPORTS = ["monetization.tasks_support", "monetization.tasks_cache"]

# --- Net revenue (monetization.commission; the provider packages hold the dated commission defaults) ---
# Dated versions added to a provider's commission rules, e.g. Apple's Small Business Program:
# {"app_store": [{"since": "2021-01-01", "small_business_program": True}]}.
STORE_COMMISSION_RULES: dict = {}
# Tax included in store prices by storefront country (the stores collect and remit it), dated.
STORE_TAX_RATES: dict = {
    country: [{"since": "2000-01-01", "rate": rate}]
    for country, rate in {
        "GB": "0.20", "DE": "0.19", "FR": "0.20", "ES": "0.21", "IT": "0.22",
        "JP": "0.10", "IN": "0.18", "BR": "0.00", "AU": "0.10", "CA": "0.00", "US": "0.00",
    }.items()
}  # fmt: skip
# The one currency Finance totals in (converted at the day's ECB reference rate, monetization.services.fx).
REPORTING_CURRENCY = os.environ.get("REPORTING_CURRENCY", "USD")

# --- Outbound events (monetization/outbox): delivery to the endpoints superusers register ---
OUTBOX_DELIVER_INTERVAL = float(os.environ.get("OUTBOX_DELIVER_INTERVAL", "2"))
OUTBOX_DELIVER_BUDGET_SECONDS = float(os.environ.get("OUTBOX_DELIVER_BUDGET_SECONDS", "30"))
OUTBOX_DELIVER_BATCH = int(os.environ.get("OUTBOX_DELIVER_BATCH", "500"))
# Audit rows the relay reads per transaction (monetization.services.outbox.outbox_relay).
OUTBOX_RELAY_BATCH = int(os.environ.get("OUTBOX_RELAY_BATCH", "5000"))
OUTBOX_PULL_PAGE = int(os.environ.get("OUTBOX_PULL_PAGE", "100"))  # GET /api/v1/events default page
# Concurrent connections per endpoint; a customer's events always share one, in order.
OUTBOX_DELIVER_LANES = int(os.environ.get("OUTBOX_DELIVER_LANES", "8"))
OUTBOX_RETRY_BASE_SECONDS = float(os.environ.get("OUTBOX_RETRY_BASE_SECONDS", "30"))
OUTBOX_RETRY_MAX_SECONDS = float(os.environ.get("OUTBOX_RETRY_MAX_SECONDS", str(6 * 3600)))
# Stripe's figure: retried for three days, then parked (replayable from the admin).
OUTBOX_RETRY_FOR_SECONDS = float(os.environ.get("OUTBOX_RETRY_FOR_SECONDS", str(3 * 86400)))
OUTBOX_ENDPOINT_DISABLE_AFTER_SECONDS = float(os.environ.get("OUTBOX_ENDPOINT_DISABLE_AFTER_SECONDS", str(5 * 86400)))
CELERY_IMPORTS.append("monetization.tasks_outbox")
CELERY_BEAT_SCHEDULE["outbox-deliver"] = {
    "task": "monetization.tasks_outbox.outbox_deliver_task",
    "schedule": OUTBOX_DELIVER_INTERVAL,
    "options": {"expires": max(OUTBOX_DELIVER_INTERVAL, 1.0)},
}

# --- Subscription lifecycle (subscriptions.platform_rules holds the dated defaults) ---
# Per provider, a list of dated rule versions overriding the defaults, e.g.
# {"google_play": [{"since": "2000-01-01", "grace_days": 3, "hold_days": 30}]}.
SUBSCRIPTION_PLATFORM_RULES: dict = {}
SUBSCRIPTION_SWEEP_CHUNK = int(os.environ.get("SUBSCRIPTION_SWEEP_CHUNK", "20000"))
CELERY_BEAT_SCHEDULE["subscriptions-lifecycle-sweep"] = {
    "task": "subscriptions.lifecycle_sweep",
    "schedule": timedelta(seconds=int(os.environ.get("SUBSCRIPTION_SWEEP_INTERVAL", "300"))),
}
# Customers paying on two platforms at once for the same entitlements: Support's queue, daily.
CELERY_BEAT_SCHEDULE["subscriptions-overlaps-detect"] = {
    "task": "subscriptions.overlaps_detect",
    "schedule": crontab(hour=4, minute=20),
}

# Win-back rules (subscriptions.services.win_back): lapsed and churned customers targeted, conversions measured.
WIN_BACK_INTERVAL = float(os.environ.get("WIN_BACK_INTERVAL", "3600"))
WIN_BACK_CHUNK = int(os.environ.get("WIN_BACK_CHUNK", "5000"))
CELERY_BEAT_SCHEDULE["subscriptions-win-back"] = {
    "task": "subscriptions.win_back_run",
    "schedule": WIN_BACK_INTERVAL,
    "options": {"expires": WIN_BACK_INTERVAL},
}
# Web price changes that move existing subscribers: their Stripe subscriptions switch price before the renewal
# the change takes effect at (subscriptions.services.price_changes.price_changes_push; idempotent).
PRICE_CHANGE_PUSH_INTERVAL = float(os.environ.get("PRICE_CHANGE_PUSH_INTERVAL", "3600"))
CELERY_BEAT_SCHEDULE["subscriptions-price-changes-push"] = {
    "task": "subscriptions.price_changes_push",
    "schedule": PRICE_CHANGE_PUSH_INTERVAL,
    "options": {"expires": PRICE_CHANGE_PUSH_INTERVAL},
}

# Grace a product grants on its own terms, by product kind, whatever the platform rule says
# (a Verified Organization keeps its badges 14 days after a failed invoice, then is suspended).
SUBSCRIPTION_PRODUCT_GRACE_DAYS = {"organization": int(os.environ.get("VERIFIED_ORG_GRACE_DAYS", "14"))}

# --- Creator revenue sharing (creators app); defaults follow X's public rules ---
CREATOR_ELIGIBILITY = {
    # Any of these entitlement keys counts as "active Premium subscription or verified organization".
    "premium_entitlements": ["verified_badge", "org_gold_badge", "affiliate_badge"],
    "min_impressions": 5_000_000,  # organic impressions over the last `impressions_months` months
    "impressions_months": 3,
    "min_verified_followers": 500,
    "min_account_age_months": 3,
}
CREATOR_POOL_SHARE = "0.25"  # share of the period's subscription revenue that goes to the pool
CREATOR_POOL_CURRENCY = "USD"
CREATOR_ENGAGEMENT_WEIGHTS = {"impressions": 1, "replies": 20, "reposts": 10, "likes": 2}
CREATOR_MIN_PAYOUT = "10.00"  # in CREATOR_POOL_CURRENCY; smaller balances carry over
CREATOR_SUBSCRIPTION_SHARE = {"rate": "0.97", "lifetime_threshold": "50000.00", "rate_after": "0.90"}
CREATOR_ANOMALY_FACTOR = 10  # a day above N x the trailing 7-day average is flagged
# Who transfers creator payouts: Stripe Connect unless told otherwise (the demo and the tests name the double).
CREATOR_PAYOUT_PROVIDER = env.get("CREATOR_PAYOUT_PROVIDER", "monetization.providers.stripe.StripeConnectPayouts")
CELERY_BEAT_SCHEDULE["creators-eligibility"] = {
    "task": "creators.tasks.eligibility_reevaluate_all",
    "schedule": timedelta(hours=24),
}

# --- Queues: one per kind of work, so that a slow export or payout run never delays a webhook ---
# Production runs a worker pool per queue (Procfile, deploy/k8s: ``celery worker -Q webhooks``...); a
# worker started without -Q (the tests, the demo, bench, reliability) consumes every queue below.
# Routed by task name; a task added later joins its kind by name (``*.outbound*``, ``*export*``).
CELERY_TASK_DEFAULT_QUEUE = "default"
WORK_QUEUES = ("webhooks", "sweeps", "payouts", "outbound", "exports", "default")
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in WORK_QUEUES]
CELERY_TASK_ROUTES = {
    "monetization.tasks.*": {"queue": "webhooks"},  # apply received / waiting events, the webhook sweep
    "creators.tasks.cycle_*": {"queue": "payouts"},
    "*outbound*": {"queue": "outbound"},
    "subscriptions.acknowledge_play_purchases": {"queue": "outbound"},  # calls Google Play
    "*export*": {"queue": "exports"},
    "subscriptions.lifecycle_sweep": {"queue": "sweeps"},
    "subscriptions.reconcile_providers": {"queue": "sweeps"},
    "subscriptions.overlaps_detect": {"queue": "sweeps"},
    "subscriptions.win_back_run": {"queue": "sweeps"},
    "subscriptions.price_changes_push": {"queue": "outbound"},  # calls Stripe
    "verified_orgs.*": {"queue": "sweeps"},
    "creators.tasks.eligibility_*": {"queue": "sweeps"},
    "monetization.tasks_support.*": {"queue": "sweeps"},
    "monetization.tasks_cache.*": {"queue": "sweeps"},
}

# --- Webhook throughput: kombu's Redis transport with one reusable publishing client per channel ---
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = os.environ.get("CELERY_BROKER_TRANSPORT", "monetization.broker:Transport")
# RabbitMQ (amqp://, the production broker): durable queues and persistent messages (Celery's defaults),
# and a publish returns only once the broker has the message.
if CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://")):
    CELERY_BROKER_TRANSPORT_OPTIONS["confirm_publish"] = True

# Last: every variable found missing above, named together.
env.check()
