"""The real URLs plus ``/bench/bare/<pk>``: a plain Django view reading one row by primary key, and
``/bench/nodb``: a Django view that touches no database (Django's own cost through the middleware)."""

from django.http import JsonResponse
from django.urls import path

from backoffice.urls import urlpatterns as real_urlpatterns
from monetization.models import Customer


def bare(request, pk: int):
    row = Customer.objects.filter(pk=pk).values("id", "external_id", "handle").first()
    return JsonResponse(row or {}, status=200 if row else 404)


def nodb(request):
    return JsonResponse({"ok": True})


urlpatterns = [*real_urlpatterns, path("bench/bare/<int:pk>", bare), path("bench/nodb", nodb)]
