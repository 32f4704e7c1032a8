"""The admin as an inspection tool (STYLE rule 23): price history, read-only, and an action
that queues a refresh of the selected tickers through Celery; corporate actions, the fetched
ones read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from marketdata.models import CorporateAction, PriceHistory
from marketdata.port import Source, session_date
from marketdata.price_cache import announce_stored
from marketdata.tasks import refresh_tickers_task
from marketdata.wiring import is_live


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` rows: ``COUNT(*)`` over a table of millions of bars would cost more
    than the page it numbers. Beyond the cap the admin shows "10000" and pages up to it; the
    filters, the date hierarchy and the ticker search narrow the list instead."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


@admin.register(PriceHistory)
class PriceHistoryAdmin(admin.ModelAdmin):
    list_display = ("ticker", "session", "close", "volume", "source", "fetched_at")
    list_filter = ("source", "interval")
    date_hierarchy = "timestamp"
    search_fields = ("ticker",)
    search_help_text = "A ticker, or its beginning (AAP finds AAPL)."
    ordering = ("-timestamp", "ticker")
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    actions = ("refresh_selected_tickers",)

    # Read-only, imported bars included: bars come from the provider or from import_prices
    # (which also drops the cached prices); an edit here would bypass both.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="date", ordering="timestamp")
    def session(self, obj: PriceHistory):
        return session_date(obj.timestamp)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        # Tickers are stored upper-case: a case-sensitive prefix match can use the index.
        term = search_term.strip().upper()
        if not term:
            return queryset, False
        return queryset.filter(ticker__startswith=term), False

    @admin.action(description="Refresh selected tickers", permissions=["view"])
    def refresh_selected_tickers(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not is_live():
            self.message_user(
                request,
                "Nothing can be fetched without an API key: set ALPHA_VANTAGE_API_KEY (in the "
                "environment or .env) and restart. No refresh was queued.",
                messages.WARNING,
            )
            return
        tickers = sorted(set(queryset.order_by().values_list("ticker", flat=True).distinct()))
        refresh_tickers_task.delay_on_commit(tickers)
        self.message_user(
            request,
            f"Queued a refresh of {len(tickers)} ticker{'s' if len(tickers) != 1 else ''} "
            f"({', '.join(tickers[:20])}{', …' if len(tickers) > 20 else ''}); fresh ones are "
            "skipped. The worker fetches them through "
            "the quota; see the market-data status page.",
            messages.SUCCESS,
        )


@admin.register(CorporateAction)
class CorporateActionAdmin(admin.ModelAdmin):
    """Splits and dividends. Fetched rows are the provider's and read-only (the next fetch
    would overwrite an edit); an operator adds or corrects the others here or with
    ``import_prices --actions``. A save applies the action to positions as an import does."""

    list_display = ("ticker", "kind", "date", "value", "pay_date", "source", "fetched_at")
    list_filter = ("kind", "source")
    date_hierarchy = "date"
    search_fields = ("ticker",)
    search_help_text = "A ticker, or its beginning."
    ordering = ("-date", "ticker")
    fields = ("ticker", "kind", "date", "value", "pay_date", "record_date", "declaration_date")

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.source == Source.ALPHA_VANTAGE:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.source == Source.ALPHA_VANTAGE:
            return False
        return super().has_delete_permission(request, obj)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip().upper()
        return (queryset.filter(ticker__startswith=term), False) if term else (queryset, False)

    def save_model(self, request: HttpRequest, obj: CorporateAction, form, change: bool) -> None:
        obj.ticker = obj.ticker.strip().upper()
        obj.source = Source.IMPORT
        obj.fetched_at = timezone.now()
        super().save_model(request, obj, form, change)
        transaction.on_commit(lambda: announce_stored([obj.ticker]))

    def delete_model(self, request: HttpRequest, obj: CorporateAction) -> None:
        super().delete_model(request, obj)
        transaction.on_commit(lambda: announce_stored([obj.ticker]))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        tickers = sorted(set(queryset.values_list("ticker", flat=True)))
        super().delete_queryset(request, queryset)
        transaction.on_commit(lambda: announce_stored(tickers))
