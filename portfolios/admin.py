"""The admin as an inspection tool (STYLE rule 23): support can see every portfolio, its
holdings and its ledger, and change none of it. The ledger is written by ``services`` alone
(each row with its running totals, in one transaction); an edit here would bypass that."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from portfolios.models import Holding, Order, Portfolio, Transaction


class ReadOnly:
    """View only: no add, change or delete, for the rows and their inlines alike."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class HoldingInline(ReadOnly, admin.TabularInline):
    model = Holding
    fields = ("ticker", "quantity", "cost_basis")
    extra = 0


@admin.register(Portfolio)
class PortfolioAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("name", "owner", "cash", "net_contributions", "realized_gain", "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username")
    search_help_text = "A portfolio's name or its owner's username."
    date_hierarchy = "created_at"
    inlines = (HoldingInline,)


@admin.register(Transaction)
class TransactionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = (
        "executed_at",
        "portfolio",
        "owner",
        "kind",
        "ticker",
        "quantity",
        "price",
        "cash_change",
        "realized_gain",
        "price_source",
        "price_as_of",
        "price_was_stale",
        "price_rule",
    )
    list_filter = ("kind", "price_source", "price_was_stale")
    list_select_related = ("portfolio__owner",)
    search_fields = ("ticker", "portfolio__name", "portfolio__owner__username")
    search_help_text = "A ticker, a portfolio's name or its owner's username."
    date_hierarchy = "executed_at"
    list_per_page = 100

    @admin.display(description="owner", ordering="portfolio__owner__username")
    def owner(self, obj: Transaction) -> str:
        return obj.portfolio.owner.get_username()


@admin.register(Order)
class OrderAdmin(ReadOnly, admin.ModelAdmin):
    list_display = (
        "placed_at",
        "portfolio",
        "side",
        "kind",
        "ticker",
        "quantity",
        "trigger",
        "time_in_force",
        "status",
        "expires_on",
        "reserved_cash",
        "reserved_shares",
        "closed_at",
        "reason",
    )
    list_filter = ("status", "side", "kind", "time_in_force")
    list_select_related = ("portfolio",)
    search_fields = ("ticker", "portfolio__name", "portfolio__owner__username")
    search_help_text = "A ticker, a portfolio's name or its owner's username."
    date_hierarchy = "placed_at"
    list_per_page = 100
