"""The app as deployed: gunicorn in a subprocess with the production settings."""

from tests.faults.conftest import make_app  # noqa: F401 - the fixture, shared
