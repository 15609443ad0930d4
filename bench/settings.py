"""Benchmark-only settings: the production settings plus a bare comparison view (bench/urls.py).

Only ``bench/bench_entitlements.py`` points DJANGO_SETTINGS_MODULE here; the
project never serves ``/bench/`` otherwise.
"""

from backoffice.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

import os  # noqa: E402

# BENCH_HEALTH_CHECKS=0/1: Django's per-request ``SELECT 1`` on a reused connection off/on, on either
# side of ``--via-pgbouncer`` (by default on direct, off behind the pooler: backoffice/databases.py), to
# weigh its round trip. (Nothing to split for prepared statements: Django binds parameters on the client
# and leaves psycopg's prepare_threshold at None, so the direct side never prepares either.)
if os.environ.get("BENCH_HEALTH_CHECKS") in ("0", "1"):
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = os.environ["BENCH_HEALTH_CHECKS"] == "1"  # noqa: F405
