"""Benchmark-only settings: the production settings plus a bare comparison view (bench/urls.py).

Only ``bench/bench_entitlements.py`` points DJANGO_SETTINGS_MODULE here; the
project never serves ``/bench/`` otherwise.
"""

from backoffice.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
