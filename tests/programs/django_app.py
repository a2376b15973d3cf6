"""A one-file Django project (settings, view and WSGI app) with a CPU-heavy view.

It is its own settings module and, like the wsgi.py that ``startproject`` writes, it names
itself in DJANGO_SETTINGS_MODULE only after importing Django.
"""

import os
import time

DEBUG = False
SECRET_KEY = "test-only-not-secret"
ROOT_URLCONF = "django_app"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
MIDDLEWARE: list[str] = []
INSTALLED_APPS: list[str] = []

from django.core.wsgi import get_wsgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app")
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def compute_report(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


def report(request: HttpRequest) -> JsonResponse:
    compute_report(0.6)
    return JsonResponse({"pid": os.getpid()})


urlpatterns = [path("report", report)]
application = get_wsgi_application()
