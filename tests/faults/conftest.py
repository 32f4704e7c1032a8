"""The stage for fault tests: real services the test owns and may break.

Each test starts what it needs on spare loopback ports (never the machine's own PostgreSQL on
5432 or Redis on 6379): a ``redis-server``, a PostgreSQL cluster made with ``initdb``, the app
itself under gunicorn in a subprocess, a Celery worker. Then it kills or stops one of them and
watches what the app does, over HTTP, as a person's browser would.

The subprocesses run the code of the tree this file sits in (``BASE_DIR``), so a scratch copy of
the project tests its own code.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

BASE_DIR = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
START_TIMEOUT = 90.0  # two shared cores: Django's start-up alone can take a few seconds
REQUEST_TIMEOUT = 60.0
PASSWORD = "correct-horse-battery-staple"

# The outer test run's services must not leak into the app under test.
SCRUBBED_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PAPERTRADE_CONFIG",
    "PAPERTRADE_REQUIRE_SERVICES",
    "ALPHA_VANTAGE_API_KEY",
    "ALPHA_VANTAGE_BASE_URL",
    "PYTEST_ADDOPTS",
    "DEBUG",
)


def unavailable(reason: str) -> None:
    """Skip where a service binary is missing, except in CI, where that is a failure."""
    if os.environ.get("PAPERTRADE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"PAPERTRADE_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float = START_TIMEOUT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


# --- A TCP proxy that can stop forwarding -----------------------------------------------------
class TcpProxy:
    """A proxy on 127.0.0.1 in front of ``target`` (host, port), and the network faults it can
    play:

    - ``blackhole()``: a partition. It still accepts connections, then reads and drops what
      comes and never answers, on new connections and on those already open (the peer waits for
      its timeout; nothing is refused).
    - ``latency(seconds)``: every reply from the target arrives ``seconds`` late (each round
      trip costs that much more), in order, however it is split into packets.
    - ``refuse()``: new connections are closed at once; ``cut()`` closes every open one.
    - ``forward()`` heals all of them.

    ``connections`` counts the connections it accepted."""

    def __init__(self, target: tuple[str, int]) -> None:
        import threading

        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._blackhole = False
        self._refuse = False
        self._delay = 0.0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        self._blackhole = True

    def latency(self, seconds: float) -> None:
        self._delay = seconds

    def refuse(self) -> None:
        self._refuse = True

    def cut(self) -> None:
        with self._lock:
            doomed, self._open = self._open, []
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def forward(self) -> None:
        self._blackhole = self._refuse = False
        self._delay = 0.0

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self._refuse:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._open.append(client)
            worker = self._drop if self._blackhole else self._pump_both
            threading.Thread(target=worker, args=(client,), daemon=True).start()

    def _drop(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    def _pump_both(self, client: socket.socket) -> None:
        import threading

        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.append(upstream)
        upstream.settimeout(None)
        threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()
        self._pump(client, upstream, False)

    def _pump(self, source: socket.socket, sink: socket.socket, reply: bool) -> None:
        import queue
        import threading

        # Replies are delivered by a second thread at (arrival + latency), so a slow link
        # delays each round trip once, not each packet of it.
        due: queue.Queue = queue.Queue()

        def deliver() -> None:
            with contextlib.suppress(OSError):
                while (item := due.get()) is not None:
                    at, data = item
                    time.sleep(max(0.0, at - time.monotonic()))
                    if not self._blackhole:  # partitioned: what was under way is lost
                        sink.sendall(data)
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

        threading.Thread(target=deliver, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                due.put((time.monotonic() + (self._delay if reply else 0.0), data))
        due.put(None)

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def tcp_proxy():
    """``tcp_proxy((host, port))`` starts a :class:`TcpProxy`; every one is closed after."""
    proxies: list[TcpProxy] = []

    def start(target: tuple[str, int]) -> TcpProxy:
        proxy = TcpProxy(target)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


# --- Redis -----------------------------------------------------------------------------------
class RedisServer:
    """A throwaway ``redis-server`` (no persistence) on a spare port; kill it, start it again."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            unavailable("redis-server is not on PATH: apt-get install redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: the way a crashed or OOM-killed Redis goes, without a goodbye."""
        if self.proc is not None:
            _stop(self.proc, signal.SIGKILL)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


# --- PostgreSQL ------------------------------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    return found[-1] if found and found[-1] else None


class PostgresCluster:
    """A PostgreSQL cluster of its own (``initdb`` in a temp dir, ``pg_ctl`` on a spare port).

    PostgreSQL refuses to run as root; as root, the cluster runs as the ``postgres`` user in a
    directory handed to it.
    """

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            unavailable("initdb/pg_ctl not found under /usr/lib/postgresql/*/bin")
        self.port = free_port()
        # Not pytest's tmp_path: its parents are private to root, and postgres must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="pt-fault-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/papertrade"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args], check=True, capture_output=True, timeout=START_TIMEOUT, text=True
        )

    def init(self) -> PostgresCluster:
        self._run(
            self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        self.start()
        self.sql("CREATE DATABASE papertrade", dbname="postgres")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects every client at once, as a crash or a failover does."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def sql(self, query: str, *, dbname: str = "papertrade") -> list[tuple]:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        ) as conn:
            cursor = conn.execute(query)
            return cursor.fetchall() if cursor.description else []

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pg_cluster():
    cluster = PostgresCluster()
    try:
        cluster.init()
    except subprocess.CalledProcessError as exc:
        cluster.destroy()
        pytest.fail(f"could not make a PostgreSQL cluster: {exc.stderr}")
    yield cluster
    cluster.destroy()


# --- The app ---------------------------------------------------------------------------------
def live_on_sqlite(tmp_path: Path, *, redis_url: str, fake_av, config: Path) -> dict[str, str]:
    """An app's environment: an SQLite file of its own, the given Redis as cache (and broker),
    live against the local fake provider with ``config``."""
    from conftest import PROVIDER_KEY

    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
        "REDIS_URL": redis_url,
        "ALPHA_VANTAGE_API_KEY": PROVIDER_KEY,
        "ALPHA_VANTAGE_BASE_URL": fake_av.url,
        "PAPERTRADE_CONFIG": str(config),
    }


def write_config(path: Path, **values) -> Path:
    """The shipped config.toml with ``key = value`` lines replaced (each key must exist once)."""
    text = (BASE_DIR / "config.toml").read_text(encoding="utf-8")
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, f"config.toml has no single line for {key}"
    path.write_text(text, encoding="utf-8")
    return path


# The 2023 IBM bars the fault tests trade against (a test fixture, not the demo set).
IBM_PRICES = "marketdata/tests/fixtures/prices-2023/IBM.csv"


SETUP = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.core.management import call_command
from portfolios.services import portfolio_create

call_command("migrate", verbosity=0)
call_command("import_prices", "--from-file", {ibm!r}, verbosity=0)
user = get_user_model().objects.create_user(username="alice", password={password!r})
p = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))
print("PORTFOLIO", p.pk)
"""


class App:
    """PaperTrade in subprocesses, with its own environment: ``manage`` runs a command,
    ``serve`` starts gunicorn (one worker, so its log is one process's)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        base = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        self.env = {
            **base,
            "DJANGO_SETTINGS_MODULE": "papertrade.settings",
            "CELERY_BROKER_URL": "memory://",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.port = free_port()
        self.log = workdir / "web.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [PYTHON, str(BASE_DIR / "manage.py"), *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT * 2,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return result

    def python(self, code: str) -> str:
        """Run ``code`` with Django set up; return what it printed."""
        result = subprocess.run(
            [PYTHON, "-c", "import django; django.setup()\n" + code],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT * 2,
        )
        if result.returncode != 0:
            raise AssertionError(f"driver script failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def setup(self) -> int:
        """Migrate, load IBM's stored prices, create alice and her portfolio; its id."""
        out = self.python(SETUP.format(password=PASSWORD, ibm=IBM_PRICES))
        return int(re.search(r"PORTFOLIO (\d+)", out).group(1))

    def serve(self, *, threads: int = 4) -> App:
        self._log_fh = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "papertrade.wsgi",
                "--chdir",
                str(BASE_DIR),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                str(threads),
                "--timeout",
                "120",
                "--no-control-socket",  # not the user-wide default socket others may use
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers, what=f"gunicorn on port {self.port} (log: {self.log})")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")
        try:
            return requests.get(self.url + "/accounts/login/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None
            self._log_fh.close()

    def browser(self, username: str = "alice") -> Browser:
        return Browser(self.url).login(username, PASSWORD)


class Browser:
    """A person at a browser: cookies, the CSRF token on every POST, redirects not followed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def login(self, username: str, password: str) -> Browser:
        self.get("/accounts/login/")
        response = self.post("/accounts/login/", {"username": username, "password": password})
        assert response.status_code == 302, f"login failed: {response.status_code}"
        return self

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(
            self.url + path, allow_redirects=False, timeout=REQUEST_TIMEOUT, **kwargs
        )

    def post(self, path: str, data: dict) -> requests.Response:
        token = self.session.cookies.get("csrftoken", "")
        return self.session.post(
            self.url + path,
            data={**data, "csrfmiddlewaretoken": token},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )


@pytest.fixture
def make_app(tmp_path):
    """Make an :class:`App` with the given environment; every one made is stopped after."""
    apps: list[App] = []

    def make(env: dict[str, str]) -> App:
        app = App(tmp_path, env)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.stop()


# --- A Celery worker -------------------------------------------------------------------------
WORKER = """
import sys
from papertrade.celery import app
app.worker_main(["worker", "--pool=threads", "--concurrency=4", "--loglevel=INFO",
                 "-n", sys.argv[1], "--without-mingle", "--without-gossip",
                 "--without-heartbeat"])
"""


@pytest.fixture
def celery_worker(tmp_path):
    """Start a Celery worker for an :class:`App` (its broker must be a server, e.g. the
    ``redis_server`` fixture's): ``celery_worker(app)``, or with a worker script of one's own
    (``code``, given the worker's name as ``sys.argv[1]``). Its log is ``tmp_path/<name>.log``;
    every worker started is killed after the test."""
    workers: list[subprocess.Popen] = []

    def start(app: App, name: str = "worker", code: str = WORKER) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        proc = subprocess.Popen(
            [PYTHON, "-c", code, f"{name}@fault-test"],
            cwd=BASE_DIR,
            env=app.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole
        )
        workers.append(proc)
        wait_for(
            lambda: proc.poll() is None and " ready." in log.read_text(errors="replace"),
            what=f"the celery worker (log: {log})",
        )
        return proc

    yield start
    for proc in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
