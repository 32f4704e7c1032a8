"""config.toml: behaviour settings, checked key by key. A bad file stops the app with a message
naming the file and the dotted key, so whoever edits it knows what to fix."""

import re

import pytest

from papertrade.config import DEFAULT_PATH, Config, ConfigError, config_path, load

SHIPPED = DEFAULT_PATH.read_text(encoding="utf-8")


@pytest.fixture
def write_config(tmp_path):
    """Write the shipped config.toml with ``edit`` applied, return the path."""

    def write(edit=lambda text: text):
        path = tmp_path / "config.toml"
        path.write_text(edit(SHIPPED), encoding="utf-8")
        return path

    return write


def replace_line(key: str, new: str):
    """An edit replacing the line ``key = ...`` (the first one) with ``new``."""

    def edit(text: str) -> str:
        result, count = re.subn(rf"(?m)^{re.escape(key)} = .*$", new, text, count=1)
        assert count == 1, f"no line for {key} in config.toml"
        return result

    return edit


def add_after_table(table: str, line: str):
    def edit(text: str) -> str:
        assert f"[{table}]\n" in text
        return text.replace(f"[{table}]\n", f"[{table}]\n{line}\n", 1)

    return edit


def refused(path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message, "the message names the file"
    return message


def test_it_loads_the_shipped_config_into_frozen_settings():
    config = load(DEFAULT_PATH)

    assert isinstance(config, Config)
    assert config.path == str(DEFAULT_PATH)
    assert config.quota.per_day == 25
    assert config.market_data.request_timeout_seconds == 10.0
    assert config.staleness.market_timezone == "America/New_York"
    assert config.refresh.watchlist[0] == "AAPL"
    assert isinstance(config.refresh.watchlist, tuple)
    with pytest.raises(AttributeError):
        config.quota.per_day = 1000  # frozen


def test_it_loads_a_copy_from_anywhere(write_config):
    path = write_config(replace_line("per_day", "per_day = 500"))

    config = load(path)

    assert config.quota.per_day == 500
    assert config.path == str(path)


def test_it_widens_an_integer_where_a_number_is_expected(write_config):
    config = load(
        write_config(replace_line("request_timeout_seconds", "request_timeout_seconds = 5"))
    )

    assert config.market_data.request_timeout_seconds == 5.0
    assert isinstance(config.market_data.request_timeout_seconds, float)


def test_it_refuses_an_unknown_key_naming_it(write_config):
    message = refused(write_config(add_after_table("ui", "colour = 'blue'")))

    assert "unknown key ui.colour" in message


def test_it_refuses_a_misspelt_key_naming_it(write_config):
    message = refused(write_config(replace_line("per_day", "per_dya = 25")))

    assert "unknown key quota.per_dya" in message


def test_it_refuses_an_unknown_table_naming_it(write_config):
    message = refused(write_config(lambda text: text + "\n[extra]\nanswer = 42\n"))

    assert re.search(r"unknown key extra\b", message)


def test_it_refuses_a_missing_key_naming_it(write_config):
    message = refused(write_config(replace_line("poll_interval_seconds", "")))

    assert "missing key ui.poll_interval_seconds" in message


def test_it_refuses_a_missing_table_naming_it(write_config):
    def drop_ui(text: str) -> str:
        return text[: text.index("[ui]")]

    message = refused(write_config(drop_ui))

    assert "missing key ui" in message


@pytest.mark.parametrize(
    ("key", "line", "says"),
    [
        ("poll_interval_seconds", 'poll_interval_seconds = "30"', "ui.poll_interval_seconds"),
        ("poll_interval_seconds", "poll_interval_seconds = 30.5", "ui.poll_interval_seconds"),
        ("poll_interval_seconds", "poll_interval_seconds = true", "ui.poll_interval_seconds"),
        ("premium", 'premium = "no"', "market_data.premium"),
        ("request_timeout_seconds", 'request_timeout_seconds = "10"', "request_timeout_seconds"),
        ("request_timeout_seconds", "request_timeout_seconds = true", "request_timeout_seconds"),
        ("cron", "cron = 1830", "refresh.cron"),
        ("watchlist", 'watchlist = "AAPL"', "refresh.watchlist"),
        ("watchlist", 'watchlist = ["AAPL", 7]', "refresh.watchlist[1]"),
    ],
)
def test_it_refuses_a_value_of_the_wrong_type_naming_the_key(write_config, key, line, says):
    message = refused(write_config(replace_line(key, line)))

    assert says in message
    assert "must be" in message


def test_it_refuses_a_value_where_a_table_belongs(write_config):
    def flatten_ui(text: str) -> str:
        return "ui = 5\n" + text[: text.index("[ui]")]

    message = refused(write_config(flatten_ui))

    assert "[ui] must be a table" in message


@pytest.mark.parametrize(
    ("key", "zone"),
    [
        ("market_timezone", "Mars/Olympus_Mons"),
        ("market_timezone", "../../etc/passwd"),
        ("market_timezone", ""),
        ("timezone", "America/Nowhere"),
    ],
)
def test_it_refuses_a_time_zone_nobody_knows(write_config, key, zone):
    message = refused(write_config(replace_line(key, f'{key} = "{zone}"')))

    section = "staleness" if key == "market_timezone" else "refresh"
    assert f"{section}.{key}" in message
    assert "time zone" in message


@pytest.mark.parametrize(
    ("key", "line", "says"),
    [
        ("provider", 'provider = "yahoo"', "market_data.provider"),
        ("request_timeout_seconds", "request_timeout_seconds = 0", "request_timeout_seconds"),
        ("request_budget_seconds", "request_budget_seconds = 0", "request_budget_seconds"),
        ("per_day", "per_day = 0", "quota.per_day"),
        ("interactive_reserve", "interactive_reserve = 26", "quota.interactive_reserve"),
        ("price_ttl_seconds", "price_ttl_seconds = 0", "cache.price_ttl_seconds"),
        ("grace_minutes", "grace_minutes = -1", "staleness.grace_minutes"),
        ("cron", 'cron = "30 18 * *"', "refresh.cron"),
        ("poll_interval_seconds", "poll_interval_seconds = 0", "ui.poll_interval_seconds"),
    ],
)
def test_it_refuses_a_value_out_of_range_naming_the_key(write_config, key, line, says):
    assert says in refused(write_config(replace_line(key, line)))


def test_it_refuses_a_missing_file_naming_it(tmp_path):
    message = refused(tmp_path / "nowhere.toml")

    assert "no such file" in message
    assert "PAPERTRADE_CONFIG" in message


def test_it_refuses_a_file_that_is_not_toml(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[quota\nper_day = 25\n", encoding="utf-8")

    assert "not valid TOML" in refused(path)


def test_it_reads_the_file_named_by_papertrade_config(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERTRADE_CONFIG", str(tmp_path / "other.toml"))
    assert config_path() == str(tmp_path / "other.toml")

    monkeypatch.delenv("PAPERTRADE_CONFIG")
    assert config_path() == str(DEFAULT_PATH)
