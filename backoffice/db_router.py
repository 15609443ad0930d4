"""The database router: reports, charts and exports read from the replica, everything else and every
write from the primary (the rules are ``monetization.db_routing``'s)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from monetization.db_routing import read_alias


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica holds the primary's rows: an object read from either is the same object.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica and the session connection are the primary's database: migrated once, there.
        return db == DEFAULT_DB_ALIAS
