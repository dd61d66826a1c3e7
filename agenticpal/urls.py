from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from agenticpal import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on their own; the file is agenticpal/static/favicon.ico.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.ico"))),
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
