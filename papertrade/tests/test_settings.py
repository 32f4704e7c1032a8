"""Settings read from a clean environment, as a fresh clone starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], "
    "'cache': s.CACHES['default']['BACKEND'], 'broker': s.CELERY_BROKER_URL, "
    "'debug': s.DEBUG, 'live': bool(s.ALPHA_VANTAGE_API_KEY)}))"
)
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ALPHA_VANTAGE_API_KEY", "DEBUG")


def probe(**extra):
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update(DJANGO_SETTINGS_MODULE="papertrade.settings", **extra)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_a_fresh_clone_runs_on_embedded_services():
    result = probe()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": "django.db.backends.sqlite3",
        "cache": "django.core.cache.backends.db.DatabaseCache",
        "broker": "filesystem://",
        "debug": False,
        "live": False,
    }


def test_redis_serves_as_cache_and_broker_when_configured():
    result = probe(REDIS_URL="redis://127.0.0.1:6379/3")
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["cache"] == "django_redis.cache.RedisCache"
    assert settings["broker"] == "redis://127.0.0.1:6379/3"


def test_a_bad_variable_is_named():
    result = probe(DEBUG="perhaps")
    assert result.returncode != 0
    assert "Environment variable DEBUG is invalid" in result.stderr


def test_a_bad_behaviour_file_is_named_with_its_key(tmp_path):
    bad = tmp_path / "bad.toml"
    text = (ROOT / "config.toml").read_text().replace("per_day = 25", 'per_day = "lots"')
    bad.write_text(text)
    result = probe(PAPERTRADE_CONFIG=str(bad))
    assert result.returncode != 0
    assert f"{bad}: quota.per_day must be of type int, not str" in result.stderr


def test_an_empty_variable_means_its_default_as_in_the_example_file():
    result = probe(DATABASE_URL="", REDIS_URL="")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["db"] == "django.db.backends.sqlite3"
