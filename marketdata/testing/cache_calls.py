"""Counting the calls that reach the Django cache: for tests and benchmarks of round-trips."""

from __future__ import annotations


class CacheCalls:
    """While entered, records each call into the Django cache, outermost only: each is one
    round-trip on Redis (the database cache's ``set_many`` calls its own ``set``; that is still
    one call of ours).

        with CacheCalls() as calls:
            ...
        assert calls.calls == ["get_many"]
    """

    METHODS = (
        "get", "get_many", "set", "set_many", "add", "delete", "delete_many", "incr", "decr",
        "touch", "has_key", "get_or_set",
    )  # fmt: skip

    def __init__(self) -> None:
        from django.core.cache import cache

        self.cache = cache
        self.calls: list[str] = []
        self._depth = 0

    def __enter__(self) -> CacheCalls:
        for name in self.METHODS:
            setattr(self.cache, name, self._counting(name, getattr(self.cache, name)))
        return self

    def __exit__(self, *exc_info) -> None:
        for name in self.METHODS:
            delattr(self.cache, name)  # the instance attribute goes; the method shows again

    def _counting(self, name, real):
        def call(*args, **kwargs):
            if self._depth == 0:
                self.calls.append(name)
            self._depth += 1
            try:
                return real(*args, **kwargs)
            finally:
                self._depth -= 1

        return call
