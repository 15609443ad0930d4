"""The demo (``make run``): seed data and the providers' test doubles, apart from the product.

Each app keeps its share of ``seed_demo`` in its own ``<app>/demo/`` package and names
its steps in :data:`demo_steps` from its AppConfig.ready() (dotted paths: no demo code
is imported until the demo is seeded). A step module has ``seed(*, rng, out, options)``;
steps run in ``order``, each in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from monetization.registry import Registry


@dataclass(frozen=True)
class DemoStep:
    order: int
    module: str  # dotted path of a module with seed(*, rng, out, options)


demo_steps: Registry[DemoStep] = Registry("demo step")
