from django.contrib import admin
from django.urls import include, path

from agenticpal import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("workspace.urls")),  # before social's: owns complete/<backend>/
    path("", include("social_django.urls", namespace="social")),
    path("", include("chat.urls")),
]
