"""Client apps acting for their signed-in user: the ``X-Acting-Customer`` header.

Org admins and creators are platform accounts, not staff, and hold no API keys. The client
app (web, iOS, Android) has already authenticated its user; it calls with its own API key
(the endpoint's scope) and names that user by external id in ``X-Acting-Customer``. What the
customer may do is then the service's question (an org admin of this organization, the
owner of this creator account, the invitee of this invitation).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter

from monetization.errors import ErrorCode, InvalidInput, NotFound
from monetization.models import Customer

ACTING_CUSTOMER_HEADER = "X-Acting-Customer"

# Declared once for every endpoint that reads the header: @extend_schema(parameters=[ACTING_CUSTOMER_PARAMETER]).
ACTING_CUSTOMER_PARAMETER = OpenApiParameter(
    ACTING_CUSTOMER_HEADER,
    # As the server reads it: blank (after stripping) is refused, so the schema refuses it too.
    {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^\S(.*\S)?$"},
    OpenApiParameter.HEADER,
    required=True,
    description="External id of the customer the client app acts for (already authenticated by the app).",
)


def acting_customer(request) -> Customer:
    """The customer the header names: 400 ``acting_customer_required`` without one, 404
    ``acting_customer_not_found`` for an unknown external id."""
    external_id = (request.headers.get(ACTING_CUSTOMER_HEADER) or "").strip()
    if "\x00" in external_id:
        raise InvalidInput(f"The {ACTING_CUSTOMER_HEADER} header holds a NUL byte.")
    if not external_id:
        raise InvalidInput(
            f"Name the acting customer in the {ACTING_CUSTOMER_HEADER} header.",
            code=ErrorCode.ACTING_CUSTOMER_REQUIRED,
        )
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer with external id '{external_id}'.", code=ErrorCode.ACTING_CUSTOMER_NOT_FOUND)
    return customer


def acting_label(request, customer: Customer) -> str:
    """Who acted, for the audit trail: the client app and the customer it acted for."""
    user = request.user
    app = user.get_username() if hasattr(user, "get_username") else "?"
    return f"{app} as customer:{customer.external_id}"
