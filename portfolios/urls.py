from django.urls import path

from portfolios import views

urlpatterns = [
    # /accounts/
    path("accounts/signup/", views.signup, name="signup"),
    # /
    path("", views.dashboard, name="dashboard"),
    # /portfolios/
    path("portfolios/", views.portfolio_create, name="portfolio_create"),
    path("portfolios/<int:pk>/", views.portfolio_detail, name="portfolio_detail"),
    path("portfolios/<int:pk>/live/", views.portfolio_live, name="portfolio_live"),
    path("portfolios/<int:pk>/clock/", views.portfolio_clock, name="portfolio_clock"),
    path(
        "portfolios/<int:pk>/export/<str:kind>.csv",
        views.portfolio_export,
        name="portfolio_export",
    ),
    path(
        "portfolios/<int:pk>/performance/",
        views.portfolio_performance,
        name="portfolio_performance",
    ),
    path("portfolios/<int:pk>/trade/", views.portfolio_trade, name="portfolio_trade"),
    path("portfolios/<int:pk>/trade/preview/", views.trade_preview, name="trade_preview"),
    path(
        "portfolios/<int:pk>/orders/<int:order_id>/cancel/",
        views.order_cancel,
        name="order_cancel",
    ),
    path("portfolios/<int:pk>/deposit/", views.portfolio_deposit, name="portfolio_deposit"),
    path("portfolios/<int:pk>/withdraw/", views.portfolio_withdraw, name="portfolio_withdraw"),
    path("portfolios/<int:pk>/rename/", views.portfolio_rename, name="portfolio_rename"),
    path("portfolios/<int:pk>/delete/", views.portfolio_delete, name="portfolio_delete"),
    # /stocks/
    path("watchlist/", views.watchlist, name="watchlist"),
    path("watchlist/add/", views.watchlist_add, name="watchlist_add"),
    path("watchlist/<str:ticker>/remove/", views.watchlist_remove, name="watchlist_remove"),
    path("stocks/", views.stock_search, name="stock_search"),
    path("stocks/<str:ticker>/", views.stock_detail, name="stock_detail"),
    path("stocks/<str:ticker>/price-status/", views.stock_price_status, name="stock_price_status"),
]
