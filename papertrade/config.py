"""Behaviour settings from ``config.toml``, loaded once into frozen dataclasses.

Deployment settings and secrets come from the environment (see ``settings.py``); this file holds
what the app *does*: quota limits, cache lifetimes, staleness rules, the refresh schedule, the
watchlist and the UI's poll interval. Every key is checked: an unknown key, a missing key or a
value of the wrong type raises :class:`ConfigError` naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
import zoneinfo
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PATH = BASE_DIR / "config.toml"


class ConfigError(Exception):
    """The behaviour file is missing, unreadable or has a bad key or value."""


@dataclass(frozen=True)
class MarketDataConfig:
    provider: str
    premium: bool
    global_quote: bool
    bulk_quotes: bool
    request_timeout_seconds: float
    request_budget_seconds: float


@dataclass(frozen=True)
class QuotaConfig:
    min_seconds_between_calls: float
    per_minute: int
    per_day: int
    interactive_reserve: int


@dataclass(frozen=True)
class CacheConfig:
    price_ttl_seconds: int
    negative_ttl_seconds: int
    search_ttl_seconds: int
    error_log_interval_seconds: int


@dataclass(frozen=True)
class BreakerConfig:
    failures_to_open: int
    open_seconds: int


@dataclass(frozen=True)
class TimeoutsConfig:
    """Bounded waits on our own services: a partition costs a timeout, never a hang."""

    database_connect_seconds: float
    web_statement_seconds: float
    task_statement_seconds: float
    cache_seconds: float
    cache_failures_to_skip: int
    cache_skip_seconds: float
    broker_seconds: float


@dataclass(frozen=True)
class StalenessConfig:
    grace_minutes: int
    market_timezone: str


@dataclass(frozen=True)
class RefreshConfig:
    cron: str
    timezone: str
    watchlist: tuple[str, ...]
    actions_every_days: int


@dataclass(frozen=True)
class UIConfig:
    poll_interval_seconds: int
    transactions_per_page: int


@dataclass(frozen=True)
class OrdersConfig:
    gtc_days: int
    stop_reserve: float


@dataclass(frozen=True)
class Config:
    market_data: MarketDataConfig
    quota: QuotaConfig
    cache: CacheConfig
    breaker: BreakerConfig
    timeouts: TimeoutsConfig
    staleness: StalenessConfig
    refresh: RefreshConfig
    ui: UIConfig
    orders: OrdersConfig
    path: str = ""


PROVIDERS = ("alpha_vantage",)


def _check_type(value: object, annotation: object, where: str) -> object:
    """Return ``value`` converted to ``annotation`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, not {type(value).__name__}")
        return tuple(_check_type(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {type(value).__name__}")
        return float(value)
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{where} must be an integer, not bool")
    if not isinstance(value, annotation):  # type: ignore[arg-type]
        raise ConfigError(
            f"{where} must be of type {annotation.__name__}, not {type(value).__name__}"  # type: ignore[union-attr]
        )
    return value


def _build(cls: type, data: object, where: str, path: str) -> object:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{where}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls) if f.name != "path"]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}: unknown key {where + '.' if where else ''}{unknown[0]}")
    values = {}
    for name in fields:
        key = f"{where}.{name}" if where else name
        if name not in data:
            raise ConfigError(f"{path}: missing key {key}")
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            values[name] = _build(annotation, data[name], key, path)
        else:
            try:
                values[name] = _check_type(data[name], annotation, key)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    return cls(**values)


def _validate(config: Config) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{config.path}: {key} {why}")

    if config.market_data.provider not in PROVIDERS:
        raise bad("market_data.provider", f"must be one of {', '.join(PROVIDERS)}")
    if config.market_data.bulk_quotes and not config.market_data.premium:
        raise bad("market_data.bulk_quotes", "needs market_data.premium = true (a premium key)")
    if config.market_data.request_timeout_seconds <= 0:
        raise bad("market_data.request_timeout_seconds", "must be greater than 0")
    if config.market_data.request_budget_seconds <= 0:
        raise bad("market_data.request_budget_seconds", "must be greater than 0")
    q = config.quota
    if q.min_seconds_between_calls < 0:
        raise bad("quota.min_seconds_between_calls", "must not be negative")
    for name in ("per_minute", "per_day"):
        if getattr(q, name) < 1:
            raise bad(f"quota.{name}", "must be at least 1")
    if not 0 <= q.interactive_reserve <= q.per_day:
        raise bad("quota.interactive_reserve", "must be between 0 and quota.per_day")
    for name in ("price_ttl_seconds", "negative_ttl_seconds", "search_ttl_seconds"):
        if getattr(config.cache, name) < 1:
            raise bad(f"cache.{name}", "must be at least 1")
    if config.cache.error_log_interval_seconds < 0:
        raise bad("cache.error_log_interval_seconds", "must not be negative")
    for name in ("failures_to_open", "open_seconds"):
        if getattr(config.breaker, name) < 1:
            raise bad(f"breaker.{name}", "must be at least 1")
    t = config.timeouts
    for name in (
        "database_connect_seconds",
        "web_statement_seconds",
        "task_statement_seconds",
        "cache_seconds",
        "cache_skip_seconds",
        "broker_seconds",
    ):
        if getattr(t, name) <= 0:
            raise bad(f"timeouts.{name}", "must be greater than 0")
    if t.cache_failures_to_skip < 1:
        raise bad("timeouts.cache_failures_to_skip", "must be at least 1")
    if config.staleness.grace_minutes < 0:
        raise bad("staleness.grace_minutes", "must not be negative")
    for key, tz in (
        ("staleness.market_timezone", config.staleness.market_timezone),
        ("refresh.timezone", config.refresh.timezone),
    ):
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise bad(key, f"names no known time zone: {tz!r}") from None
    if len(config.refresh.cron.split()) != 5:
        raise bad("refresh.cron", "must have five fields: minute hour day month day-of-week")
    if config.refresh.actions_every_days < 0:
        raise bad("refresh.actions_every_days", "must not be negative (0: never fetch them)")
    if config.ui.poll_interval_seconds < 1:
        raise bad("ui.poll_interval_seconds", "must be at least 1")
    if config.ui.transactions_per_page < 1:
        raise bad("ui.transactions_per_page", "must be at least 1")
    if not 1 <= config.orders.gtc_days <= 3660:
        raise bad("orders.gtc_days", "must be between 1 and 3660 days")
    if not 0 <= config.orders.stop_reserve <= 10:
        raise bad("orders.stop_reserve", "must be between 0 and 10 (a fraction: 0.10 is 10 %)")


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate the behaviour file at ``path``."""
    path = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (set PAPERTRADE_CONFIG to a readable file)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = _build(Config, data, "", path)
    config = dataclasses.replace(config, path=path)  # type: ignore[type-var]
    _validate(config)  # type: ignore[arg-type]
    return config  # type: ignore[return-value]


def config_path() -> str:
    return os.environ.get("PAPERTRADE_CONFIG") or str(DEFAULT_PATH)


@cache
def get_config() -> Config:
    """The behaviour settings of this process, read once."""
    return load(config_path())
