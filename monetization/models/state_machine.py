from django.db import models
from django_fsm import FSMModelMixin


class StateMachineModel(FSMModelMixin):
    """django-fsm's model mixin with a refresh that is safe under threads.

    django-fsm refreshes by switching the state field's protection off on the field itself, which every
    instance in the process shares: two threads refreshing at once switch it back on under each other and
    one fails with "Direct state modification is not allowed". Forgetting this instance's own state
    instead lets the reload set it (the protection guards only a state already loaded), for this
    instance alone."""

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        for attname in self._get_protected_fsm_fields():
            if fields is None or attname in fields:
                self.__dict__.pop(attname, None)
        models.Model.refresh_from_db(self, using=using, fields=fields, from_queryset=from_queryset)
