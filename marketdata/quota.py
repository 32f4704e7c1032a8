"""The provider's call quota, shared by every process: web workers, Celery workers, commands.

Alpha Vantage's free key allows about 1 request a second and 25 a day (API-FACTS §4). Three
limits from ``config.toml`` ``[quota]`` hold across all processes at once:

- ``min_seconds_between_calls`` between any two calls, whoever makes them;
- ``per_minute`` calls in one clock minute (UTC);
- ``per_day`` calls in one UTC day, of which ``interactive_reserve`` only
  :attr:`Priority.INTERACTIVE` may spend: the scheduled refresh cannot starve a person looking
  up a new ticker.

Alpha Vantage does not document when its daily count resets (API-FACTS §4: "treat as unknown"),
so a UTC day is assumed. If that guess is wrong, the provider's own day-limit answer reaches the
adapter, which calls :meth:`Quota.close_until` with the next UTC midnight: nobody calls again
that day anyway.

The state lives in shared storage, never in process memory (STYLE rule 22): Redis when the cache
is django-redis (:class:`RedisQuota`), else a database table (:class:`DatabaseQuota`, the
embedded default). Unlike the cache, the quota **fails closed** (STYLE rule 21): when its store
cannot be reached, :meth:`Quota.acquire` raises :class:`QuotaStoreUnavailable` and no call is made.

Accepted imprecision, everywhere:

- The spacing is between *acquires*, not between arrivals at the provider. The HTTP request leaves
  a few milliseconds after its acquire, and that latency varies from call to call, so two arrivals
  can be a little closer than the spacing. Keep ``min_seconds_between_calls`` above the provider's
  limit by more than that jitter.
- A call is counted when it is taken, before it is made: a call that then fails (timeout, refused)
  still counts. Erring towards fewer calls is the safe side.
- Waiters are not queued: when several processes wait for the same slot, whichever asks first
  after it frees up gets it. A priority only matters for the daily reserve.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from marketdata.port import MarketDataUnavailable, RateLimited

# --- Keys: the same names in Redis and in the database table -------------------------------
KEY_PREFIX = "papertrade:quota:"
CLOSED_KEY = KEY_PREFIX + "closed_until"  # value "<until µs>:<scope>"; row: at + scope
LAST_CALL_KEY = KEY_PREFIX + "last_call"  # value "<µs>"; row: at (and the database lock row)
SECOND_PREFIX = KEY_PREFIX + "second:"  # + epoch second: calls in that second
MINUTE_PREFIX = KEY_PREFIX + "minute:"  # + epoch minute: calls in that clock minute
DAY_PREFIX = KEY_PREFIX + "day:"  # + YYYYMMDD: calls that UTC day; + ":p<priority>" per priority

# How long counters outlive their window: long enough for status() to read them.
SECOND_TTL = 2
MINUTE_TTL = 120
DAY_TTL = 2 * 86400

# Scopes a caller may wait for (``acquire(wait=...)``); never the day, never the provider's own.
WAITABLE = ("second", "minute")
# The longest single sleep while waiting, so a window closed meanwhile is noticed soon.
MAX_SLEEP = 1.0
# Up to this much extra sleep spreads waiters so they do not all ask the store at one instant
# (a thundering herd; correctness never depends on it: the store decides who gets the slot).
WAIT_JITTER = 0.02


class Priority(enum.IntEnum):
    INTERACTIVE = 0  # a person waiting on a page
    HELD = 1  # scheduled refresh of held tickers
    WATCHLIST = 2
    BACKFILL = 3


class QuotaStoreUnavailable(MarketDataUnavailable):
    """The quota's store (Redis or the database) cannot be reached: no call may be made."""


@dataclass(frozen=True)
class QuotaStatus:
    used_second: int  # calls in the current UTC clock second
    used_minute: int  # calls in the current UTC clock minute
    used_day: int  # calls in the current UTC day
    left_minute: int
    left_day: int
    left_day_scheduled: int  # what non-interactive work may still spend today
    closed_until: datetime | None  # set when upstream said "rate limited"
    next_call_at: datetime | None  # earliest time the spacing allows another call; None = now
    closed_scope: str = ""  # the scope close_until() was given, while closed
    used_day_by_priority: dict[Priority, int] = field(default_factory=dict)


class Quota(Protocol):
    def acquire(self, *, priority: Priority, wait: float = 0.0) -> None:
        """Take one call from the quota or raise ``RateLimited(retry_at=..., scope=...)``.

        ``scope`` is "second", "minute", "day" or the scope given to :meth:`close_until`
        ("upstream" by default). With ``wait`` > 0, sleep (in small steps) up to ``wait`` seconds
        for the per-second spacing or the minute window to free up; never for the day or a
        closed window. Raises :class:`QuotaStoreUnavailable` when the store cannot be reached.
        Call it outside any database transaction (see :class:`DatabaseQuota`).
        """

    def close_until(self, retry_at: datetime, *, scope: str = "upstream") -> None:
        """The provider answered with a rate-limit: no call is made by anyone until ``retry_at``."""

    def status(self) -> QuotaStatus: ...


def next_utc_midnight(moment: datetime) -> datetime:
    """The start of the UTC day after ``moment``: when a day-limit window opens again."""
    day = moment.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def get_quota() -> Quota:
    """The quota of this deployment: Redis when the cache is django-redis, else the database.

    Cheap to call: it builds a small object and, for Redis, reuses the cache's connection pool.
    """
    from django.conf import settings

    if settings.CACHES["default"]["BACKEND"].startswith("django_redis."):
        return RedisQuota()
    return DatabaseQuota()


# --- Shared between the two stores ---------------------------------------------------------
@dataclass(frozen=True)
class _Snapshot:
    """What the store holds, read at ``now`` (the store's clock)."""

    now: datetime
    used_second: int = 0
    used_minute: int = 0
    used_day: int = 0
    closed_until: datetime | None = None
    closed_scope: str = ""
    last_call: datetime | None = None
    by_priority: dict[Priority, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Verdict:
    now: datetime  # the store's clock when it decided
    taken: bool
    scope: str = ""
    retry_at: datetime | None = None
    closed: bool = False  # refused because close_until() closed the window


def _us(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _minute_start(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class _BaseQuota:
    def __init__(self, config=None) -> None:
        if config is None:
            from django.conf import settings

            config = settings.PAPERTRADE.quota
        self.config = config
        self.spacing = timedelta(seconds=config.min_seconds_between_calls)

    # -- what each store provides
    def _take(self, priority: Priority) -> _Verdict:
        raise NotImplementedError

    def _snapshot(self) -> _Snapshot:
        raise NotImplementedError

    # -- the rules
    def day_limit(self, priority: Priority) -> int:
        """Calls a day ``priority`` may reach: all of them for a person, less the reserve else."""
        if priority == Priority.INTERACTIVE:
            return self.config.per_day
        return self.config.per_day - self.config.interactive_reserve

    def acquire(self, *, priority: Priority, wait: float = 0.0) -> None:
        priority = Priority(priority)
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            verdict = self._take(priority)
            if verdict.taken:
                return
            assert verdict.retry_at is not None
            # The delay is measured on the store's clock (retry_at and now both come from it),
            # so a process whose own clock is off still sleeps the right amount.
            delay = max((verdict.retry_at - verdict.now).total_seconds(), 0.0)
            left = deadline - time.monotonic()
            if verdict.scope not in WAITABLE or delay > left:
                # Not worth sleeping: the slot frees up after the caller stops waiting.
                raise RateLimited(
                    self._message(verdict), retry_at=verdict.retry_at, scope=verdict.scope
                )
            # Sleep outside any transaction or script; then ask again, because another process
            # may take the freed slot first (then we sleep again, while the wait lasts).
            time.sleep(max(min(delay + random.uniform(0, WAIT_JITTER), left, MAX_SLEEP), 0.0))

    def status(self) -> QuotaStatus:
        snap = self._snapshot()
        c = self.config
        closed = snap.closed_until if snap.closed_until and snap.closed_until > snap.now else None
        next_call = snap.last_call + self.spacing if snap.last_call else None
        return QuotaStatus(
            used_second=snap.used_second,
            used_minute=snap.used_minute,
            used_day=snap.used_day,
            left_minute=max(c.per_minute - snap.used_minute, 0),
            left_day=max(c.per_day - snap.used_day, 0),
            left_day_scheduled=max(c.per_day - c.interactive_reserve - snap.used_day, 0),
            closed_until=closed,
            next_call_at=next_call if next_call and next_call > snap.now else None,
            closed_scope=snap.closed_scope if closed else "",
            used_day_by_priority=snap.by_priority,
        )

    def _message(self, verdict: _Verdict) -> str:
        at = verdict.retry_at
        c = self.config
        if verdict.closed:
            return (
                f"The market-data provider answered with a rate limit ({verdict.scope}); "
                f"no calls until {at:%Y-%m-%d %H:%M:%S} UTC."
            )
        if verdict.scope == "second":
            return (
                f"Calls to the market-data provider are spaced {c.min_seconds_between_calls:g} s "
                f"apart; the next may go at {at:%H:%M:%S} UTC."
            )
        if verdict.scope == "minute":
            return (
                f"The market-data quota of {c.per_minute} calls a minute is spent "
                f"until {at:%H:%M} UTC."
            )
        if verdict.scope == "day":
            return (
                f"Today's market-data quota is spent ({c.per_day} calls a day, "
                f"{c.interactive_reserve} of them kept for people looking up prices); "
                f"it frees up at {at:%Y-%m-%d %H:%M} UTC."
            )
        return f"The market-data quota is closed until {at:%Y-%m-%d %H:%M:%S} UTC."

    def _judge(self, snap: _Snapshot, priority: Priority) -> _Verdict:
        """The rules in Python, for the database store (Redis runs the same rules in Lua)."""
        now = snap.now
        if snap.closed_until and snap.closed_until > now:
            scope = snap.closed_scope or "upstream"
            return _Verdict(now, False, scope, snap.closed_until, closed=True)
        # Longest window first, so retry_at is when *every* limit lets the call through (and
        # scheduled work past its share hears "day" at once instead of waiting for the spacing).
        if snap.used_day >= self.day_limit(priority):
            return _Verdict(now, False, "day", next_utc_midnight(now))
        if snap.used_minute >= self.config.per_minute:
            return _Verdict(now, False, "minute", _minute_start(now) + timedelta(minutes=1))
        if snap.last_call and now < snap.last_call + self.spacing:
            return _Verdict(now, False, "second", snap.last_call + self.spacing)
        return _Verdict(now, True)


def _check_retry_at(retry_at: datetime) -> datetime:
    if retry_at.tzinfo is None:
        raise ValueError("close_until() needs an aware datetime (UTC), not a naive one")
    return retry_at.astimezone(UTC)


# --- Redis ---------------------------------------------------------------------------------
# One script does the whole check-and-take: Redis runs a script atomically, so two processes
# can never both read "1 left" and both take it (the read-check-write race of separate GET/INCR
# calls). Its clock is Redis's TIME, read inside the script, so processes on hosts whose clocks
# disagree still agree on the spacing, the minute and the day.
# The minute/day keys are built inside the script from that clock, so they are not declared in
# KEYS: fine on a single Redis server (what we run), not on Redis Cluster.
# Numbers are formatted with %d before they are stored or concatenated: Lua 5.1 would print a
# microsecond timestamp as 1.7e+15.
_LUA = r"""
local function ymd(days)  -- days since 1970-01-01 -> "YYYYMMDD" (H. Hinnant's civil_from_days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d%02d%02d', y, m, d)
end
local function n(v) return tonumber(v or '0') or 0 end
local function fmt(v) return string.format('%d', v) end

local mode = ARGV[1]
local spacing = tonumber(ARGV[2])
local per_minute = tonumber(ARGV[3])
local day_limit = tonumber(ARGV[4])
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000000 + tonumber(t[2])
local epoch_minute = math.floor(sec / 60)
local epoch_day = math.floor(sec / 86400)
local second_key = ARGV[6] .. fmt(sec)
local minute_key = ARGV[7] .. fmt(epoch_minute)
local day_key = ARGV[8] .. ymd(epoch_day)

local closed_until, closed_scope = 0, ''
local closed = redis.call('GET', KEYS[1])
if closed then
  local u, s = string.match(closed, '^(%d+):(.*)$')
  closed_until, closed_scope = n(u), s
end

if mode == 'close' then
  -- Keep the later of two closes: a short "wait a second" must not reopen a day-long close.
  local until_us = tonumber(ARGV[9])
  if until_us > closed_until and until_us > now then
    redis.call('SET', KEYS[1], fmt(until_us) .. ':' .. ARGV[10],
               'PXAT', fmt(math.floor(until_us / 1000) + 1000))
  end
  return {1, '', 0, now}
end

local last = n(redis.call('GET', KEYS[2]))
local used_second = n(redis.call('GET', second_key))
local used_minute = n(redis.call('GET', minute_key))
local used_day = n(redis.call('GET', day_key))
local bp = redis.call('MGET', day_key .. ':p0', day_key .. ':p1', day_key .. ':p2',
                      day_key .. ':p3')
local function reply(ok, scope, retry)
  return {ok, scope, retry, now, used_second, used_minute, used_day, closed_until,
          closed_scope, last, n(bp[1]), n(bp[2]), n(bp[3]), n(bp[4])}
end

if mode == 'peek' then return reply(0, '', 0) end

-- Longest window first, so retry_at is when *every* limit lets the call through.
if closed_until > now then return reply(0, 'closed:' .. closed_scope, closed_until) end
if used_day >= day_limit then return reply(0, 'day', (epoch_day + 1) * 86400000000) end
if used_minute >= per_minute then return reply(0, 'minute', (epoch_minute + 1) * 60000000) end
if last > 0 and now < last + spacing then return reply(0, 'second', last + spacing) end

redis.call('SET', KEYS[2], fmt(now), 'PX', fmt(math.floor(spacing / 1000) + 60000))
redis.call('INCR', second_key)
redis.call('EXPIRE', second_key, ARGV[9])
redis.call('INCR', minute_key)
redis.call('EXPIRE', minute_key, ARGV[10])
redis.call('INCR', day_key)
redis.call('EXPIRE', day_key, ARGV[11])
local pkey = day_key .. ':p' .. ARGV[5]
redis.call('INCR', pkey)
redis.call('EXPIRE', pkey, ARGV[11])
used_second, used_minute, used_day = used_second + 1, used_minute + 1, used_day + 1
bp[tonumber(ARGV[5]) + 1] = n(bp[tonumber(ARGV[5]) + 1]) + 1
return reply(1, '', 0)
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisQuota(_BaseQuota):
    """The quota in Redis; ``client`` defaults to the django-redis cache's connection pool.

    The raw client does not share the cache's ``IGNORE_EXCEPTIONS``: every ``RedisError`` is
    caught here and turned into :class:`QuotaStoreUnavailable`, so a Redis outage stops calls
    instead of letting every process call freely (fail closed, STYLE rule 21).
    """

    def __init__(self, config=None, *, client=None) -> None:
        super().__init__(config)
        if client is None:
            from django_redis import get_redis_connection

            client = get_redis_connection("default")
        self._client = client
        # Registered once per quota object: the SHA is computed here, the script is sent by
        # EVALSHA and loaded on the server only the first time it is missing (NOSCRIPT).
        self._script = client.register_script(_LUA)

    def _run(self, mode: str, *args) -> list:
        import redis

        try:
            return self._script(
                keys=[CLOSED_KEY, LAST_CALL_KEY],
                args=[
                    mode,
                    round(self.spacing.total_seconds() * 1_000_000),
                    self.config.per_minute,
                    *args,
                ],
            )
        except redis.exceptions.RedisError as exc:
            raise QuotaStoreUnavailable(
                "The market-data quota store (Redis) cannot be reached, so no call is made."
            ) from exc

    def _common_args(self, priority: Priority) -> list:
        return [self.day_limit(priority), int(priority), SECOND_PREFIX, MINUTE_PREFIX, DAY_PREFIX]

    def _parse(self, reply: list) -> tuple[bool, str, int, _Snapshot]:
        ok, scope, retry_us, now_us, sec, minute, day, closed_us, closed_scope, last_us = reply[:10]
        snap = _Snapshot(
            now=_from_us(int(now_us)),
            used_second=int(sec),
            used_minute=int(minute),
            used_day=int(day),
            closed_until=_from_us(int(closed_us)) if int(closed_us) else None,
            closed_scope=_text(closed_scope),
            last_call=_from_us(int(last_us)) if int(last_us) else None,
            by_priority={p: int(v) for p, v in zip(Priority, reply[10:14], strict=True)},
        )
        return bool(int(ok)), _text(scope), int(retry_us), snap

    def _take(self, priority: Priority) -> _Verdict:
        reply = self._run("take", *self._common_args(priority), SECOND_TTL, MINUTE_TTL, DAY_TTL)
        ok, scope, retry_us, snap = self._parse(reply)
        if ok:
            return _Verdict(snap.now, True)
        closed = scope.startswith("closed:")  # the script marks a refusal by close_until()
        scope = scope.removeprefix("closed:") or "upstream"
        return _Verdict(snap.now, False, scope, _from_us(retry_us), closed=closed)

    def _snapshot(self) -> _Snapshot:
        return self._parse(self._run("peek", *self._common_args(Priority.INTERACTIVE)))[3]

    def close_until(self, retry_at: datetime, *, scope: str = "upstream") -> None:
        retry_at = _check_retry_at(retry_at)
        self._run("close", *self._common_args(Priority.INTERACTIVE), _us(retry_at), scope)


# --- Database ------------------------------------------------------------------------------
class DatabaseQuota(_BaseQuota):
    """The quota in the ``QuotaWindow`` table: the embedded default (SQLite), or PostgreSQL.

    Each take is one short transaction that first locks the ``LAST_CALL_KEY`` row
    (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the IMMEDIATE transaction mode set in
    settings takes the database's write lock at BEGIN). Every take and close locks that same row,
    so check-then-update runs one process at a time: two processes can never both see "1 left"
    and both take it.

    The transaction is ``durable``: calling acquire inside another transaction raises
    RuntimeError, because a rollback of the outer transaction would un-count a call that was
    really made (and would hold the lock until the outer transaction ends).

    The clock: on PostgreSQL the server's ``clock_timestamp()``, read *after* the lock is held
    (so hosts whose clocks disagree still agree, and the time is not the moment we started
    waiting for the lock, which ``now()`` would give). On SQLite the database lives on this host,
    so ``timezone.now()`` is the same clock every process reads.
    """

    def __init__(self, config=None, *, using: str = "default") -> None:
        super().__init__(config)
        self.using = using

    def _now(self) -> datetime:
        from django.db import connections
        from django.utils import timezone

        connection = connections[self.using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT clock_timestamp()")
                return cursor.fetchone()[0].astimezone(UTC)
        return timezone.now()

    @staticmethod
    def _keys(now: datetime) -> tuple[str, str, str]:
        epoch = int(now.timestamp())
        return (
            f"{SECOND_PREFIX}{epoch}",
            f"{MINUTE_PREFIX}{epoch // 60}",
            f"{DAY_PREFIX}{now:%Y%m%d}",
        )

    def _lock(self):
        from marketdata.models import QuotaWindow

        # get_or_create: the first take ever creates the row; if two processes race to create
        # it, the loser's INSERT fails on the primary key and get_or_create reads (and locks)
        # the winner's row instead.
        row, _ = (
            QuotaWindow.objects.using(self.using)
            .select_for_update()
            .get_or_create(key=LAST_CALL_KEY)
        )
        return row

    def _read(self, now: datetime, last_call: datetime | None) -> tuple[_Snapshot, dict]:
        from marketdata.models import QuotaWindow

        second_key, minute_key, day_key = self._keys(now)
        priority_keys = {f"{day_key}:p{int(p)}": p for p in Priority}
        rows = {
            row.key: row
            for row in QuotaWindow.objects.using(self.using).filter(
                key__in=[CLOSED_KEY, second_key, minute_key, day_key, *priority_keys]
            )
        }

        def count(key: str) -> int:
            return rows[key].count if key in rows else 0

        closed = rows.get(CLOSED_KEY)
        snap = _Snapshot(
            now=now,
            used_second=count(second_key),
            used_minute=count(minute_key),
            used_day=count(day_key),
            closed_until=closed.at if closed else None,
            closed_scope=closed.scope if closed else "",
            last_call=last_call,
            by_priority={p: count(k) for k, p in priority_keys.items()},
        )
        return snap, rows

    def _store_error(self, exc: Exception) -> QuotaStoreUnavailable:
        return QuotaStoreUnavailable(
            "The market-data quota store (the database) cannot be reached, so no call is made."
        )

    def _take(self, priority: Priority) -> _Verdict:
        from django.db import DatabaseError, transaction
        from django.db.models import F

        from marketdata.models import QuotaWindow

        try:
            with transaction.atomic(using=self.using, durable=True):
                lock = self._lock()
                now = self._now()  # after the lock: see the class docstring
                snap, rows = self._read(now, lock.at)
                verdict = self._judge(snap, priority)
                if not verdict.taken:
                    return verdict
                second_key, minute_key, day_key = self._keys(now)
                expiry = {
                    second_key: now + timedelta(seconds=SECOND_TTL),
                    minute_key: now + timedelta(seconds=MINUTE_TTL),
                    day_key: now + timedelta(seconds=DAY_TTL),
                    f"{day_key}:p{int(priority)}": now + timedelta(seconds=DAY_TTL),
                }
                manager = QuotaWindow.objects.using(self.using)
                lock.at = now
                lock.save(update_fields=["at"])
                # Rows read above cannot change or appear before we commit (we hold the lock),
                # so "exists → increment, else create" needs no retry.
                manager.filter(key__in=[k for k in expiry if k in rows]).update(
                    count=F("count") + 1
                )
                manager.bulk_create(
                    [
                        QuotaWindow(key=k, count=1, expires_at=e)
                        for k, e in expiry.items()
                        if k not in rows
                    ]
                )
                # Old minute/second/day rows go here, under the same lock, on takes only: at
                # most a few dozen a day on a free key.
                manager.filter(expires_at__lt=now).delete()
                return verdict
        except DatabaseError as exc:
            raise self._store_error(exc) from exc

    def _snapshot(self) -> _Snapshot:
        from django.db import DatabaseError

        from marketdata.models import QuotaWindow

        # No lock: a status read may be one call behind a take committing at the same moment.
        try:
            now = self._now()
            lock = QuotaWindow.objects.using(self.using).filter(key=LAST_CALL_KEY).first()
            return self._read(now, lock.at if lock else None)[0]
        except DatabaseError as exc:
            raise self._store_error(exc) from exc

    def close_until(self, retry_at: datetime, *, scope: str = "upstream") -> None:
        from django.db import DatabaseError, transaction

        from marketdata.models import QuotaWindow

        retry_at = _check_retry_at(retry_at)
        try:
            with transaction.atomic(using=self.using, durable=True):
                self._lock()  # the same lock as a take: a take cannot slip in half-closed
                row, _ = QuotaWindow.objects.using(self.using).get_or_create(key=CLOSED_KEY)
                # Keep the later of two closes: a short one must not reopen a longer one.
                if row.at is None or retry_at > row.at:
                    row.at = retry_at
                    row.scope = scope
                    row.save(update_fields=["at", "scope"])
        except DatabaseError as exc:
            raise self._store_error(exc) from exc
