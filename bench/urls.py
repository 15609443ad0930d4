"""The real URLs plus ``/bench/bare/<pk>``: a plain Django view reading one row by primary key."""

from django.http import JsonResponse
from django.urls import path

from backoffice.urls import urlpatterns as real_urlpatterns
from monetization.models import Customer


def bare(request, pk: int):
    row = Customer.objects.filter(pk=pk).values("id", "external_id", "handle").first()
    return JsonResponse(row or {}, status=200 if row else 404)


urlpatterns = [*real_urlpatterns, path("bench/bare/<int:pk>", bare)]
