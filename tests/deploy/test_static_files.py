"""Static files as production serves them: after `collectstatic` with the production storage,
gunicorn (DEBUG off, WhiteNoise) serves the stylesheet and the chart library under
content-hashed names, Brotli- or gzip-compressed as the client asks, cached for a year and
immutable; and no page holds a blocking script in its <head>."""

import re

import pytest
import requests
from django.core.management import call_command

PRODUCTION_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"

ONE_YEAR = 365 * 24 * 3600


def head_of(html: str) -> str:
    return html.split("</head>", 1)[0]


def test_static_files_are_hashed_compressed_and_cached_for_a_year(tmp_path, make_app):
    app = make_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
            "STATIC_ROOT": str(tmp_path / "staticfiles"),
            "PAPERTRADE_PLAIN_STATIC": "false",
            "DEBUG": "false",
        }
    )
    app.manage("collectstatic", "--noinput", "--verbosity", "0")
    assert (tmp_path / "staticfiles" / "staticfiles.json").is_file()
    portfolio = app.setup()
    app.serve()
    browser = app.browser()
    page = browser.get(f"/portfolios/{portfolio}/").text

    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
    charts = re.search(r'<script src="([^"]+)" data-plotly="([^"]+)"', page)
    assert re.fullmatch(r"/static/app\.[0-9a-f]{12}\.css", stylesheet), stylesheet
    assert re.fullmatch(r"/static/charts\.[0-9a-f]{12}\.js", charts.group(1))
    plotly = charts.group(2)
    assert re.fullmatch(r"/static/vendor/plotly-basic\.min\.[0-9a-f]{12}\.js", plotly), plotly

    for url, encoding in ((stylesheet, "br"), (plotly, "br"), (plotly, "gzip")):
        asked = "br, gzip" if encoding == "br" else "gzip"
        response = requests.get(app.url + url, headers={"Accept-Encoding": asked}, timeout=10)
        assert response.status_code == 200, url
        assert response.headers["Content-Encoding"] == encoding, (url, response.headers)
        raw = int(response.headers["Content-Length"])
        cache = response.headers["Cache-Control"]
        max_age = int(re.search(r"max-age=(\d+)", cache).group(1))
        assert max_age >= ONE_YEAR and "immutable" in cache, cache
        if url == plotly:
            assert raw < 450_000, f"the chart library goes out as {raw:,} bytes ({encoding})"

    # Scripts in <head> never hold up the first paint: every one is deferred.
    for path in ("/", f"/portfolios/{portfolio}/", "/stocks/IBM/"):
        scripts = re.findall(r"<script\b[^>]*>", head_of(browser.get(path).text))
        assert scripts and all(
            " defer" in tag or 'type="application/json"' in tag for tag in scripts
        ), (path, scripts)

    # The icon and robots.txt at the site's root, as browsers and crawlers ask for them.
    icon = requests.get(app.url + "/favicon.ico", timeout=10)
    assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"
    robots = requests.get(app.url + "/robots.txt", timeout=10)
    assert robots.status_code == 200 and "User-agent" in robots.text


def test_collectstatic_fails_loudly_on_a_reference_to_a_missing_file(tmp_path, settings):
    static = tmp_path / "extra"
    static.mkdir()
    (static / "broken.css").write_text('body { background: url("nowhere.png"); }\n')
    settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, static]
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PRODUCTION_STORAGE}}
    with pytest.raises(ValueError, match="nowhere.png"):
        call_command("collectstatic", "--noinput", verbosity=0)
