"""URL routes of the example project."""

from django.urls import path

from shopsite import views

urlpatterns = [
    path("", views.index),
    path("report", views.report),
    path("export", views.export),
]
