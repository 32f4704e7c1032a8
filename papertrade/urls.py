from django.contrib import admin
from django.urls import include, path

from papertrade import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("portfolios.urls")),
    path("", include("marketdata.urls")),
]
