"""How org admins reach the API: through their client app, acting on their behalf.

Org admins are platform accounts, not staff, and hold no API keys. The client
app (web, iOS, Android) has already authenticated its user; it calls with its
own API key carrying the ``orgs:write`` scope and names the user in the
``X-Acting-Customer: <external_id>`` header. The services then check that this
customer is an admin of the organization (``not_org_admin`` otherwise), or,
for accepting an invitation, that the invitation is theirs.
"""

from __future__ import annotations

from monetization.errors import InvalidInput, NotFound
from monetization.models import Customer
from verified_orgs.error_codes import OrgErrorCode

ACTING_CUSTOMER_HEADER = "X-Acting-Customer"


def acting_customer(request) -> Customer:
    external_id = (request.headers.get(ACTING_CUSTOMER_HEADER) or "").strip()
    if not external_id:
        raise InvalidInput(
            f"Name the acting customer in the {ACTING_CUSTOMER_HEADER} header.",
            code=OrgErrorCode.ACTING_CUSTOMER_REQUIRED,
        )
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer with external id '{external_id}'.", code=OrgErrorCode.ACTING_CUSTOMER_NOT_FOUND)
    return customer


def actor_label(request, customer: Customer) -> str:
    user = request.user
    app = user.get_username() if hasattr(user, "get_username") else "?"
    return f"{app} as customer:{customer.external_id}"
