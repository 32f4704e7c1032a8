import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "papertrade.settings")
# A web process: its database statements get the web's short limit (settings.py).
os.environ.setdefault("PAPERTRADE_PROCESS", "web")
application = get_wsgi_application()

# Nearly every page judges staleness against the NYSE calendar, which loads pandas and takes
# about a second to build: do it as the worker starts, not in its first requests.
from marketdata.trading_calendar import nyse  # noqa: E402

nyse()
