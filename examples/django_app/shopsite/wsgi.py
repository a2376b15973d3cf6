"""WSGI config for the example project: ``gunicorn shopsite.wsgi``.

This is the file ``django-admin startproject`` writes, unchanged in substance: it runs as is
under pyrospan-run, which instruments Django after ``django.setup()``.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")

application = get_wsgi_application()
