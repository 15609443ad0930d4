import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monetization.settings")

app = Celery("monetization")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
