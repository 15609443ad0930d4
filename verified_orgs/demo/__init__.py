"""The demo's share of this app (``seed_demo``): seed data only, apart from the product."""
