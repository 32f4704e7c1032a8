from django.db import models
from django.db.models import Q

from marketdata.port import Source

PRICE_MAX_DIGITS = 18
PRICE_DECIMAL_PLACES = 4


class Interval(models.TextChoices):
    DAILY = "1d", "Daily"


class PriceHistoryQuerySet(models.QuerySet):
    def daily(self, ticker: str) -> "PriceHistoryQuerySet":
        return self.filter(ticker=ticker, interval=Interval.DAILY)


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
