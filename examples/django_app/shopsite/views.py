"""Views of the example project: a CPU-heavy sales report and an I/O-bound export."""

from __future__ import annotations

import time

from django.http import HttpRequest, JsonResponse

MAX_ORDERS = 5_000_000


def _bounded_int(request: HttpRequest, name: str, default: int, limit: int) -> int:
    try:
        return max(1, min(int(request.GET.get(name, default)), limit))
    except ValueError:
        return default


def build_sales_report(orders: int) -> dict[str, float]:
    """CPU-heavy: aggregates revenue per region over generated orders, in pure Python."""
    revenue: dict[str, float] = {}
    regions = ("north", "south", "east", "west", "online")
    for order in range(orders):
        region = regions[(order * 2654435761) % 5]
        amount = ((order * 7919) % 10_000) / 100
        discount = 0.1 if amount > 80 else 0.05 if amount > 40 else 0.0
        revenue[region] = revenue.get(region, 0.0) + amount * (1 - discount)
    return {region: round(total, 2) for region, total in sorted(revenue.items())}


def upload_export(seconds: float) -> str:
    """I/O-bound: waits on object storage (here a sleep), using almost no CPU."""
    time.sleep(seconds)
    return "exports/sales.csv"


def index(request: HttpRequest) -> JsonResponse:
    """What this site offers."""
    return JsonResponse({"service": "reports", "cpu": "/report?orders=N", "io": "/export"})


def report(request: HttpRequest) -> JsonResponse:
    """CPU-heavy: revenue per region over ``orders`` orders."""
    orders = _bounded_int(request, "orders", 1_200_000, MAX_ORDERS)
    return JsonResponse({"orders": orders, "revenue": build_sales_report(orders)})


def export(request: HttpRequest) -> JsonResponse:
    """I/O-bound: stores the report, waiting on storage."""
    return JsonResponse({"stored_at": upload_export(0.2)})
