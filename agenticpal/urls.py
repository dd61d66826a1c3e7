from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from agenticpal import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # The credentials page moved from the sessions app to the workspace app.
    re_path(
        r"^admin/sessions_redis/googlecredential/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/workspace/googlecredential/%(rest)s", query_string=True),
    ),
    path("admin/", admin.site.urls),
    path("", include("workspace.urls")),  # before social's: owns complete/<backend>/
    path("", include("social_django.urls", namespace="social")),
    path("", include("chat.urls")),
]
