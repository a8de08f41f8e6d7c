"""Helpers for the Graphite tests and benchmark: carbon-cache and
graphite-web (Debian's ``graphite-carbon`` and ``graphite-web``) run side by
side on loopback with a temporary configuration, a collector for the
server's log records, and small HTTP helpers.

Every wait is bounded and on an observable condition (a port accepting, a
query returning the expected points).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, List, Optional, Tuple

#: The interpreter Debian's graphite packages run under.
SYSTEM_PYTHON = "/usr/bin/python3"
CARBON_CACHE = "/usr/bin/carbon-cache"

#: Retention of the test carbon: 10 s slots, one day.
STEP = 10

__all__ = [
    "STEP",
    "LogRecords",
    "GraphiteWeb",
    "graphite_web_missing",
    "free_port",
    "http_get",
    "wait_port",
]


def graphite_web_missing() -> Optional[str]:
    """Why carbon + graphite-web cannot run here, or None when they can."""
    if not os.path.exists(CARBON_CACHE):
        return "carbon-cache is not installed (Debian package graphite-carbon)"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import graphite.settings, django, whisper"],
        capture_output=True, timeout=60)
    if probe.returncode != 0:
        return "graphite-web is not installed (Debian package graphite-web)"
    return None


def free_port() -> int:
    """A port free on 127.0.0.1 now (for children that cannot report the
    port they bound)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float, proc: Optional[subprocess.Popen[bytes]] = None) -> None:
    """Waits until 127.0.0.1:port accepts; AssertionError after ``timeout``
    or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"child {proc.args!r} exited ({proc.returncode}) before listening")
        if time.monotonic() >= deadline:
            raise AssertionError(f"nothing accepts on 127.0.0.1:{port} after {timeout} s")
        time.sleep(0.05)


def http_get(url: str, timeout: float = 30) -> Tuple[int, str, bytes]:
    """(status, content type, body) of a GET, also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


class LogRecords(logging.Handler):
    """Collects the records of logger ``client.server`` while installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[str] = []
        self.changed = threading.Condition()
        self.logger = logging.getLogger("client.server")

    def __enter__(self) -> "LogRecords":
        self.logger.addHandler(self)
        self.previous = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.previous)

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record.getMessage())
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first message ``predicate`` accepts, waiting at most ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for message in self.records:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such log message within {timeout} s; got {self.records!r}")
                self.changed.wait(left)


_CARBON_CONF = """\
[cache]
STORAGE_DIR = {root}/storage/
LOCAL_DATA_DIR = {root}/storage/whisper/
WHITELISTS_DIR = {root}/storage/lists/
CONF_DIR = {root}/conf/
LOG_DIR = {root}/log/
PID_DIR = {root}/
DATABASE = whisper
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line_port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle_port}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {query_port}
LOG_UPDATES = False
LOG_CREATES = False
LOG_LISTENER_CONNECTIONS = False
"""

_WEB_SETTINGS = """\
from graphite.settings import *  # noqa
SECRET_KEY = "graphite-web under test, loopback only"
TIME_ZONE = "UTC"
STORAGE_DIR = "{root}/storage/"
WHISPER_DIR = "{root}/storage/whisper/"
STANDARD_DIRS = [WHISPER_DIR]
CERES_DIR = "{root}/storage/ceres/"
RRD_DIR = "{root}/storage/rrd/"
LOG_DIR = "{root}/log/"
INDEX_FILE = "{root}/storage/index"
CARBONLINK_HOSTS = []
STORAGE_FINDERS = ("graphite.finders.standard.StandardFinder",)
TAGDB = None
DATABASES = {{"default": {{"NAME": "{root}/storage/graphite.db", "ENGINE": "django.db.backends.sqlite3"}}}}
LOG_RENDERING_PERFORMANCE = False
LOG_CACHE_PERFORMANCE = False
ALLOWED_HOSTS = ["127.0.0.1"]
DEBUG = False
"""

# graphite-web behind wsgiref's threading server: the test needs no web
# server package; the benchmark says which server it measured.
_WEB_SERVE = """\
import os, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "gwsettings"
import django
django.setup()
from django.core.wsgi import get_wsgi_application
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
class Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True
make_server("127.0.0.1", int(sys.argv[2]), get_wsgi_application(),
            server_class=Threading, handler_class=Quiet).serve_forever()
"""


class GraphiteWeb:
    """carbon-cache (by default, retention 10 s for a day) and graphite-web reading
    its whisper files, both on loopback, in a temporary directory."""

    def __init__(self, retention: str = f"{STEP}s:1d") -> None:
        self.retention = retention
        self.root = tempfile.mkdtemp(prefix="graphite-web-")
        self.procs: List[subprocess.Popen[bytes]] = []
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        root = self.root
        for sub in ("storage/whisper", "storage/lists", "log", "conf"):
            os.makedirs(os.path.join(root, sub))
        self.line_port, self.web_port = free_port(), free_port()
        with open(os.path.join(root, "conf", "carbon.conf"), "w") as f:
            f.write(_CARBON_CONF.format(root=root, line_port=self.line_port,
                                        pickle_port=free_port(), query_port=free_port()))
        with open(os.path.join(root, "conf", "storage-schemas.conf"), "w") as f:
            f.write(f"[default]\npattern = .*\nretentions = {self.retention}\n")
        with open(os.path.join(root, "gwsettings.py"), "w") as f:
            f.write(_WEB_SETTINGS.format(root=root))
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": root, "DJANGO_SETTINGS_MODULE": "gwsettings",
               "PYTHONDONTWRITEBYTECODE": "1"}
        migrate = subprocess.run([SYSTEM_PYTHON, "-W", "ignore", "-m", "django", "migrate", "--run-syncdb", "-v0"],
                                 env=env, cwd=root, capture_output=True, timeout=120)
        if migrate.returncode != 0:
            raise AssertionError(f"graphite-web's database setup failed: {migrate.stderr.decode()[-2000:]}")
        log = open(os.path.join(root, "log", "children.log"), "wb")
        self.procs.append(subprocess.Popen(
            [SYSTEM_PYTHON, CARBON_CACHE, f"--config={root}/conf/carbon.conf", "--debug", "start"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root))
        self.procs.append(subprocess.Popen(
            [SYSTEM_PYTHON, "-c", _WEB_SERVE, root, str(self.web_port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root))
        log.close()
        wait_port(self.line_port, 60, self.procs[0])
        wait_port(self.web_port, 60, self.procs[1])
        self.url = f"http://127.0.0.1:{self.web_port}"

    def send(self, lines: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.line_port), timeout=30) as sock:
            sock.sendall(lines)

    def get_json(self, path: str) -> Any:
        status, _, body = http_get(self.url + path)
        if status != 200:
            raise AssertionError(f"graphite-web answered {status} to {path}: {body[-2000:]!r}")
        return json.loads(body)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)
