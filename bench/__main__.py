"""Benchmark runner: ``python -m bench [name ...]``.

Each ``bench/bench_<name>.py`` has ``run(args) -> dict``; the runner prints
the figures and writes them to ``bench/out/<name>.json``. Benchmarks report
numbers (and their targets); they are not tests and assert nothing.
"""

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monetization.settings")
    os.environ.setdefault("DEBUG", "1")
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller data sets, for a smoke run")
    args = parser.parse_args()
    available = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    names = args.names or available
    OUT.mkdir(exist_ok=True)
    import django

    django.setup()
    from bench.db import ensure_database

    ensure_database()
    summary = {}
    for name in names:
        if name not in available:
            print(f"unknown benchmark {name}; have {available}", file=sys.stderr)
            return 2
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== {name}", flush=True)
        started = time.monotonic()
        result = module.run(args)
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        for key, value in result.items():
            print(f"   {key}: {value}")
        summary[name] = result
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
