"""Sign-in URLs. Included before social-auth's, so ``complete/<backend>/`` is ours."""

from django.urls import path

from workspace import views

urlpatterns = [
    path("login/", views.login_page, name="login"),
    path("login/local/<str:token>/", views.local_login, name="local_login"),
    path("logout/", views.logout_view, name="logout"),
    path("logout/everywhere/", views.logout_everywhere, name="logout_everywhere"),
    path("complete/<str:backend>/", views.oauth_complete, name="oauth_complete"),
    # Same path as social-auth's begin (included after this): ours, rate-limited, wins.
    path("login/<str:backend>/", views.oauth_begin, name="oauth_begin"),
]
