from django.urls import path

from marketdata import views

urlpatterns = [
    # /symbols/
    path("symbols/suggest/", views.symbol_suggest, name="symbol_suggest"),
    # /market-data/
    path("market-data/status/", views.status, name="market_data_status"),
]
