from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from papertrade import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # /accounts/: Django's auth views but the password reset, which mails a link: there is no
    # mail here, and §2.1 allows anonymous visitors only the login and signup pages.
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("", include("portfolios.urls")),
    path("", include("marketdata.urls")),
]

handler404 = "papertrade.views.page_not_found"
