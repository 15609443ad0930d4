"""Provider webhooks: ``POST /api/v1/webhooks/{stripe,stripe-connect,app-store,google-play}``.

The signature is the authentication: no API key, no session, no CSRF token,
no throttling (a provider retrying a backlog must not be turned away). Plain
Django views rather than DRF: this is a hot path and there is nothing to
negotiate. The response is 200 once the event is stored (or was already);
400 with ``{"code": "invalid_signature" | "malformed_payload"}`` stores nothing; 503
``provider_unavailable`` when we cannot verify (misconfigured, provider down) so the provider retries;
404 ``provider_disabled`` for a provider this deployment does not use (and for the Stripe Connect
endpoint when ``STRIPE_CONNECT_WEBHOOK_SECRET`` is not set: this deployment takes no Connect events).
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from monetization.errors import ErrorCode
from monetization.providers.base import InvalidSignature, MalformedPayload, ProviderError
from monetization.webhook_queue import webhook_receive


def _receive(request, provider: str, headers: dict[str, str], *, connect: bool = False) -> JsonResponse:
    if provider not in settings.PAYMENT_PROVIDERS_ENABLED or (connect and not settings.STRIPE_CONNECT_WEBHOOK_SECRET):
        # Not a provider of this deployment (PAYMENT_PROVIDERS_ENABLED): nothing to verify it with.
        return JsonResponse({"code": ErrorCode.PROVIDER_DISABLED, "detail": f"{provider} is not enabled."}, status=404)
    try:
        stored = webhook_receive(provider=provider, body=request.body, headers=headers, connect=connect)
    except InvalidSignature as exc:
        return JsonResponse({"code": ErrorCode.INVALID_SIGNATURE, "detail": str(exc)}, status=400)
    except MalformedPayload as exc:
        return JsonResponse({"code": ErrorCode.MALFORMED_PAYLOAD, "detail": str(exc)}, status=400)
    except ProviderError as exc:
        # Misconfiguration or a provider outage during verification: 503 so the provider redelivers later.
        return JsonResponse({"code": ErrorCode.PROVIDER_UNAVAILABLE, "detail": str(exc)}, status=503)
    return JsonResponse({"received": len(stored), "duplicates": sum(1 for _, created in stored if not created)})


@csrf_exempt
@require_POST
def stripe_webhook(request):
    return _receive(request, "stripe", {"Stripe-Signature": request.headers.get("Stripe-Signature", "")})


@csrf_exempt
@require_POST
def stripe_connect_webhook(request):
    # Connect events (creators' accounts, transfers, bank payouts) may also come to the main endpoint.
    return _receive(request, "stripe", {"Stripe-Signature": request.headers.get("Stripe-Signature", "")}, connect=True)


@csrf_exempt
@require_POST
def app_store_webhook(request):
    return _receive(request, "app_store", {})


@csrf_exempt
@require_POST
def google_play_webhook(request):
    # Pub/Sub push cannot add headers: the shared token rides in the push URL's query string.
    return _receive(request, "google_play", {"X-Push-Token": request.GET.get("token", "")})
