import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
application = get_wsgi_application()

# Imported once Django is set up: cache hits of the entitlement and offerings endpoints are
# answered ahead of it (the entitlement check outermost: it is the hottest).
from subscriptions.api.fast_path import EntitlementsFastPath  # noqa: E402
from subscriptions.api.offerings_fast_path import OfferingsFastPath  # noqa: E402

application = EntitlementsFastPath(OfferingsFastPath(application))
