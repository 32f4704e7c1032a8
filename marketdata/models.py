from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import models
from django.db.models import BigIntegerField, F, OuterRef, Q, Subquery, Window
from django.db.models.functions import Cast, Extract, RowNumber, TruncDate

from marketdata.adjust import in_new_shares
from marketdata.port import (
    NEW_YORK,
    ActionKind,
    CorporateActionPoint,
    PricePoint,
    Source,
    day_start,
)

PRICE_MAX_DIGITS = 18
PRICE_DECIMAL_PLACES = 4
EPOCH_DAY = date(1970, 1, 1)


class Interval(models.TextChoices):
    DAILY = "1d", "Daily"


class PriceHistoryQuerySet(models.QuerySet):
    """The history queries (their plans: docs/history-queries.md)."""

    def daily(self, ticker: str) -> PriceHistoryQuerySet:
        return self.filter(ticker=ticker, interval=Interval.DAILY)

    def sessions(self, ticker: str, start: date, end: date) -> PriceHistoryQuerySet:
        """The daily bars of ``ticker`` with session dates ``start``..``end``, oldest first.

        A bar is stamped at its session's close (16:00 New York), so the range is the New York
        days from ``start`` to ``end``. On PostgreSQL this is one range scan of
        ``pricehistory_unique_bar`` (ticker, interval, timestamp).
        """
        return (
            self.daily(ticker)
            .filter(
                timestamp__gte=day_start(start), timestamp__lt=day_start(end + timedelta(days=1))
            )
            .order_by("timestamp")
        )

    def history_points(self, ticker: str, start: date, end: date) -> list[PricePoint]:
        """``sessions`` as PricePoints, read as tuples (model instances cost more than the
        query on a long range).

        On PostgreSQL the timestamps are read as whole seconds since the epoch and made
        datetimes here: Django reads ``timestamptz`` through psycopg's pure-Python parser (to
        set the connection's time zone), which cost more than the query itself for twenty years
        of bars.
        """
        query = self.sessions(ticker, start, end)
        rest = ("open", "high", "low", "close", "volume", "source")
        if self.db_vendor() != "postgresql":
            rows: Iterable[tuple] = query.values_list("timestamp", *rest)
        else:
            seconds = Cast(Extract("timestamp", "epoch", tzinfo=UTC), BigIntegerField())
            at = datetime.fromtimestamp
            rows = ((at(s, UTC), *r) for s, *r in query.values_list(seconds, *rest))
        return [
            PricePoint(ticker, close, as_of, source, "USD", open_, high, low, close, volume)
            for as_of, open_, high, low, close, volume, source in rows
        ]

    def closes(
        self, tickers: Sequence[str], start: date, end: date
    ) -> dict[str, list[tuple[date, Decimal]]]:
        """{ticker: [(session date, close), ...] oldest first} from ``start`` to ``end``: one
        range scan per ticker of the unique index, in one query; timestamps read as epoch
        seconds on PostgreSQL (see ``history_points``)."""
        from django.db import connections

        if not tickers:
            return {}
        query = self.filter(
            ticker__in=list(tickers),
            interval=Interval.DAILY,
            timestamp__gte=day_start(start),
            timestamp__lt=day_start(end + timedelta(days=1)),
        ).order_by("ticker", "timestamp")
        found: dict[str, list[tuple[date, Decimal]]] = {t: [] for t in tickers}
        if self.db_vendor() == "postgresql":
            # A daily bar is stamped at its session's close, 16:00 New York: 20:00 or 21:00 UTC,
            # on the session's own date. So the UTC day number is the session, read as one
            # integer a row and turned into a date once per day (not once per row).
            day_number = Cast(Extract("timestamp", "epoch", tzinfo=UTC), BigIntegerField()) / 86400
            days: dict[int, date] = {}
            # Read straight off the cursor: 25,000 closes cost Django's row handling more than
            # the query itself (the columns need no conversion: text, integer, numeric).
            sql, params = query.values_list("ticker", day_number, "close").query.sql_with_params()
            with connections[self.db].cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            for ticker, number, close in rows:
                day = days.get(number)
                if day is None:
                    day = days[number] = EPOCH_DAY + timedelta(days=number)
                found[ticker].append((day, close))
        else:
            for ticker, at, close in query.values_list("ticker", "timestamp", "close"):
                found[ticker].append((at.astimezone(NEW_YORK).date(), close))
        return found

    def latest_points(
        self, tickers: Sequence[str], at: datetime | None = None
    ) -> dict[str, PricePoint]:
        """The latest daily bar of each ticker (at or before ``at``, if given), with the close
        before it, in one query.

        On PostgreSQL this is a UNION ALL of one ``ORDER BY timestamp DESC LIMIT 2`` per
        ticker, each an index range scan of a few rows however long the history; SQLite cannot
        slice inside a compound query, so there a window function ranks the rows instead.
        """
        from django.db import connections

        tickers = list(tickers)
        if not tickers:
            return {}
        # Each bar carries the factor of a split effective on its session, if any (a correlated
        # lookup in the same query): across a split the previous close is compared in the new
        # shares, like with like (NFLX 2025-11-17: 110.29 against 111.217, not 1,112.17).
        split = CorporateAction.objects.filter(
            kind=ActionKind.SPLIT,
            ticker=OuterRef("ticker"),
            date=OuterRef("session"),
        ).values("value")[:1]
        daily = self.filter(interval=Interval.DAILY)
        if at is not None:  # as it stood at that moment: the bars up to it
            daily = daily.filter(timestamp__lte=at)
        base = daily.annotate(session=TruncDate("timestamp", tzinfo=NEW_YORK)).annotate(
            split=Subquery(split)
        )
        features = connections[self.db].features
        if features.supports_slicing_ordering_in_compound and len(tickers) > 1:
            parts = [base.filter(ticker=t).order_by("-timestamp")[:2] for t in tickers]
            rows = list(parts[0].union(*parts[1:], all=True))
        elif len(tickers) == 1:
            rows = list(base.filter(ticker=tickers[0]).order_by("-timestamp")[:2])
        else:
            rank = Window(RowNumber(), partition_by=F("ticker"), order_by=F("timestamp").desc())
            rows = list(base.filter(ticker__in=tickers).annotate(rank=rank).filter(rank__lte=2))
        by_ticker: dict[str, list[PriceHistory]] = {}
        for row in rows:
            by_ticker.setdefault(row.ticker, []).append(row)
        points = {}
        for ticker, bars in by_ticker.items():
            bars.sort(key=lambda r: r.timestamp, reverse=True)
            previous = bars[1].close if len(bars) > 1 else None
            if bars[0].split:
                previous = in_new_shares(previous, bars[0].split)
            points[ticker] = bars[0].point(previous_close=previous)
        return points

    def db_vendor(self) -> str:
        from django.db import connections

        return connections[self.db].vendor


class PriceHistory(models.Model):
    """One as-traded (not split-adjusted) price bar. ``timestamp`` is the bar's close in UTC."""

    SOURCE_CHOICES = [(value, label) for value, label in Source.LABELS.items()]

    ticker = models.CharField(max_length=10)
    interval = models.CharField(max_length=3, choices=Interval.choices, default=Interval.DAILY)
    timestamp = models.DateTimeField()
    open = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    high = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    low = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    close = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    volume = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES)
    fetched_at = models.DateTimeField()

    objects = PriceHistoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "price history"
        constraints = [
            # Its index (ticker, interval, timestamp) also serves every range scan of one ticker.
            models.UniqueConstraint(
                fields=["ticker", "interval", "timestamp"], name="pricehistory_unique_bar"
            ),
            models.CheckConstraint(
                condition=Q(open__gt=0) & Q(high__gt=0) & Q(low__gt=0) & Q(close__gt=0),
                name="pricehistory_prices_positive",
            ),
            models.CheckConstraint(
                condition=Q(volume__isnull=True) | Q(volume__gte=0),
                name="pricehistory_volume_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticker} {self.interval} {self.timestamp:%Y-%m-%d} {self.close}"

    def point(self, previous_close=None) -> PricePoint:
        return PricePoint(
            ticker=self.ticker,
            price=self.close,
            as_of=self.timestamp,
            source=self.source,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            previous_close=previous_close,
        )


class QuotaWindow(models.Model):
    """One key of the provider's call quota when it lives in the database (``DatabaseQuota``).

    The keys are the Redis ones (``marketdata.quota``): counters (``…:minute:<epoch-minute>``,
    ``…:day:<YYYYMMDD>``) use ``count`` and expire; the last call and the closed-until time use
    ``at``. The quota prunes expired rows itself.
    """

    key = models.CharField(max_length=100, primary_key=True)
    count = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=20, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.key} = {self.count if self.at is None else self.at}"


class CorporateActionQuerySet(models.QuerySet):
    def points(self) -> list[CorporateActionPoint]:
        rows = self.order_by("date", "-kind", "ticker").values_list(
            "ticker", "kind", "date", "value", "source", "pay_date", "record_date"
        )
        return [CorporateActionPoint(*row) for row in rows]

    def splits_after(self, tickers: Sequence[str], day: date) -> dict[str, list[tuple]]:
        """{ticker: [(effective date, factor), ...]} of the splits effective after ``day``."""
        rows = self.filter(kind=ActionKind.SPLIT, ticker__in=list(tickers), date__gt=day)
        found: dict[str, list[tuple]] = {}
        for ticker, when, factor in rows.order_by("date").values_list("ticker", "date", "value"):
            found.setdefault(ticker, []).append((when, factor))
        return found


class CorporateAction(models.Model):
    """A split or a cash dividend of one ticker (PRODUCT §3.11), as the provider or an import
    gave it. Prices stay stored as traded; the port adjusts them on read, and the ledger applies
    each action to the positions it reaches (``portfolios.services.apply_corporate_actions``).
    """

    class Kind(models.TextChoices):
        SPLIT = ActionKind.SPLIT, "Split"
        DIVIDEND = ActionKind.DIVIDEND, "Dividend"

    SOURCE_CHOICES = PriceHistory.SOURCE_CHOICES

    ticker = models.CharField(max_length=10)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    date = models.DateField(help_text="A split's effective date; a dividend's ex-date.")
    value = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        help_text="A split's factor (new shares per old share); a dividend's cash per share.",
    )
    record_date = models.DateField(null=True, blank=True)
    pay_date = models.DateField(null=True, blank=True)
    declaration_date = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES)
    fetched_at = models.DateTimeField()

    objects = CorporateActionQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "ticker"]
        constraints = [
            models.UniqueConstraint(
                fields=["ticker", "kind", "date"], name="corporateaction_unique"
            ),
            models.CheckConstraint(condition=Q(value__gt=0), name="corporateaction_value_positive"),
            models.CheckConstraint(
                condition=Q(kind__in=[ActionKind.SPLIT, ActionKind.DIVIDEND]),
                name="corporateaction_kind_valid",
            ),
        ]
        indexes = [models.Index(fields=["ticker", "date"], name="corporateaction_ticker_date")]

    def __str__(self) -> str:
        return f"{self.ticker} {self.point().label} on {self.date:%Y-%m-%d}"

    def point(self) -> CorporateActionPoint:
        return CorporateActionPoint(
            self.ticker,
            self.kind,
            self.date,
            self.value,
            self.source,
            self.pay_date,
            self.record_date,
        )


class ActionsCheck(models.Model):
    """When a ticker's splits and dividends were last fetched from the provider: the scheduled
    job asks again only after ``[refresh] actions_every_days``."""

    ticker = models.CharField(max_length=10, primary_key=True)
    checked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.ticker} actions checked {self.checked_at:%Y-%m-%d %H:%M}"
