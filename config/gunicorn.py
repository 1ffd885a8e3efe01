"""gunicorn for production: `gunicorn -c config/gunicorn.py config.wsgi` (README: Configuration).

Threaded workers (gthread): a connection with nothing to read waits in the worker's poller, not in a thread,
so idle keep-alive connections and slow clients cannot hold up /healthz and /metrics as they did the single
sync worker (one idle connection held it until the timeout killed the worker). Every line gunicorn writes
goes through the project's log formatter: JSON in production, one object per line, access lines included.
Options given on the command line win over these (`-b 127.0.0.1:9000`).
"""

import logging

from gunicorn import glogging
from gunicorn.workers import gthread

from config.env import env_bool, env_choice, env_int, env_str


def _positive(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 1:
        raise ValueError(f"{name}={value}: use a whole number of 1 or more.")
    return value


bind = env_str("GUNICORN_BIND", "127.0.0.1:8000")  # behind a proxy on the host; 0.0.0.0:8000 in a container
worker_class = "gthread"
workers = _positive("GUNICORN_WORKERS", 2)
threads = _positive("GUNICORN_THREADS", 8)  # requests served at once per worker, each with its database connection
timeout = _positive("GUNICORN_TIMEOUT", 30)  # a worker silent this long (hung, not merely busy) is restarted
graceful_timeout = timeout
keepalive = _positive("GUNICORN_KEEPALIVE", 5)  # seconds an idle keep-alive connection is kept open
# gunicorn (27 here) opens a control socket at one fixed path per user ($HOME/.gunicorn/gunicorn.ctl): a second server
# on the host (another deployment, the tests) would take it over. Nothing here uses it.
control_socket_disable = True
# A new connection holds a thread while gthread waits for its first bytes, 5 s (hard-coded in gunicorn 27), then
# goes back to the poller. Forty idle connections then kept /healthz waiting 15 s (bench/idle_clients.py); with
# 1 s, a thread waits at most that long per idle connection. A client slower than that is served all the same,
# when its bytes arrive. (Behind a proxy that buffers requests, as README's is, no such client reaches gunicorn.)
if hasattr(gthread, "DEFAULT_WORKER_DATA_TIMEOUT"):
    gthread.DEFAULT_WORKER_DATA_TIMEOUT = 1.0

# Once a request's first bytes arrive, gunicorn reads the rest in a thread with no timeout at all: twenty clients
# that send half a header line and stop took every thread, and the probes with them, for as long as they stayed
# connected (a second reader's slowloris). Each read and write of a request then waits at most this long; a
# client silent longer is disconnected. A buffering proxy in front (README: Behind a reverse proxy) spares
# gunicorn such clients entirely; this bounds what reaches it directly.
read_timeout = _positive("GUNICORN_READ_TIMEOUT", 10)


class _BoundedConnection(gthread.TConn):
    def init(self):  # called before each request is read, after gunicorn made the socket blocking (no timeout)
        super().init()
        self.sock.settimeout(read_timeout)


gthread.TConn = _BoundedConnection  # the class gthread's accept() builds each connection with

LOG_FORMAT = env_choice("LOG_FORMAT", "plain" if env_bool("DJANGO_DEBUG", False) else "json", ("plain", "json"))


class AccessLogger(glogging.Logger):
    """gunicorn's logger, with the access line's parts as fields of their own (method, path, status, duration,
    remote address) rather than an Apache-style string that would have to be parsed back."""

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            status = str(resp.status or "").split(None, 1)[0] or None
            method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            fields = {
                "method": method,
                "path": path,
                "status": int(status) if status and status.isdigit() else status,
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "bytes": getattr(resp, "sent", None),
            }
            if environ.get("QUERY_STRING"):
                fields["query"] = environ["QUERY_STRING"]
            self.access_log.info("%s %s %s", method, path, status, extra=fields)
        except Exception:  # noqa: BLE001 - as gunicorn's own: a bad access line must not break the request
            self.error_log.exception("Could not write the access line.")


logger_class = AccessLogger
loglevel = "info"
# One handler, on the root logger, writing to stderr: gunicorn's own lines (banner, worker boots and timeouts,
# "Error handling request" with its traceback) and the access lines. In a worker, Django's settings.LOGGING then
# configures the same root handler, in the same format.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "config.logs.JsonFormatter"},
        "plain": {"()": "config.logs.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["context"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"level": "INFO", "handlers": ["console"]},
    # No handlers of their own (this replaces gunicorn's plain-text ones): both go to the root handler.
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
}
logging.captureWarnings(True)  # a Python warning in the master is a log line too, not bare text on stderr
