import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
application = get_wsgi_application()

# Imported once Django is set up: cache hits of the entitlement endpoint are answered ahead of it.
from subscriptions.api.fast_path import EntitlementsFastPath  # noqa: E402

application = EntitlementsFastPath(application)
