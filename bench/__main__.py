"""Benchmark runner: ``python -m bench [name ...]``.

Each ``bench/bench_<name>.py`` has ``run(args) -> dict``; the runner prints
the figures and writes them to ``bench/out/<name>.json`` (all of them also to
``bench/out/summary.json``). Benchmarks run one after the other, each
in its own process and its own database (``<DATABASE_URL>_<name>``), since
each builds data of its own shape and keeps it for the next run. Benchmarks report
numbers (and their targets); they are not tests and assert nothing.
"""

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
    os.environ.setdefault("DEBUG", "1")
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller data sets, for a smoke run")
    parser.add_argument(
        "--via-pgbouncer",
        action="store_true",
        help="entitlements, webhooks: the same load direct and through a private PgBouncer, in interleaved rounds",
    )
    args = parser.parse_args()
    available = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    names = args.names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; have {available}", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    if os.environ.get("BENCH_CHILD") == "1":
        return _run_one(names[0], args)
    flags = [flag for flag, on in (("--quick", args.quick), ("--via-pgbouncer", args.via_pgbouncer)) if on]
    return _run_each_in_its_own_database(names, flags=flags)


def _run_each_in_its_own_database(names: list[str], *, flags: list[str]) -> int:
    """Each benchmark builds data of its own shape: give each its own database and process."""
    base = os.environ.get("DATABASE_URL", "")
    summary, failed = {}, []
    for name in names:
        env = {**os.environ, "BENCH_CHILD": "1"}
        if base.startswith("postgres"):
            env["DATABASE_URL"] = f"{base}_{name}"
        # Its own cache keys too: API key and customer ids repeat across the benchmarks' databases, and
        # a throttle counter or cached entitlement left by one must not be read by the next.
        env["CACHE_KEY_PREFIX"] = f"{os.environ.get('CACHE_KEY_PREFIX', 'bo')}-bench-{name}"
        code = subprocess.call([sys.executable, "-m", "bench", name, *flags], env=env)
        if code != 0:
            failed.append(name)
            continue
        summary[name] = json.loads((OUT / f"{name}.json").read_text())
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


def _run_one(name: str, args) -> int:
    import django

    django.setup()
    from bench.db import ensure_database
    from bench.lanes import cache_clear

    ensure_database()
    cache_clear()  # this benchmark's own keys only (see _run_each_in_its_own_database)
    module = importlib.import_module(f"bench.bench_{name}")
    print(f"== {name}", flush=True)
    started = time.monotonic()
    result = module.run(args)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    for key, value in result.items():
        print(f"   {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
