"""Logs that say which lead, exception, incident, outbox event and Celery task they are about.

The ids live in a context variable: `with log_context(lead_pk=…, lead_id=…):` around a unit of work (a lead in a
routing task, an event being delivered, a console item), and Celery's task signals add the task id. A lead has
two ids, named as the API and webhooks name them: `lead_pk` is ours (the API's `id`), `lead_id` the capture
system's. `ContextFilter` copies them onto every record a handler sees; `JsonFormatter` writes one JSON object
per line (production), `PlainFormatter` a readable line with the ids at the end (DEBUG). Configured in
settings.LOGGING, and for gunicorn's own lines in config/gunicorn.py. The Celery receivers at the end make a
worker's and beat's every line a record too.
"""

import contextvars
import datetime as dt
import json
import logging
import logging.config
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

import orjson
from celery.signals import (
    celeryd_after_setup,
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_ready,
    worker_shutting_down,
)

CONTEXT_FIELDS = ("lead_pk", "lead_id", "exception_id", "incident_id", "event_id", "task_id", "webhook_id")

_context: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "handoff_log_context", default=MappingProxyType({})
)
# Attributes every LogRecord has: anything else on a record came from `extra=` and is written out too.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def log_context(**fields) -> Iterator[None]:
    """Name what the enclosed work is about; records logged inside carry these ids. None leaves a field as the
    enclosing context has it."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise TypeError(f"Unknown log context fields {sorted(unknown)}; use {CONTEXT_FIELDS}.")
    token = _context.set(MappingProxyType({**_context.get(), **{k: v for k, v in fields.items() if v is not None}}))
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> Mapping[str, object]:
    return _context.get()


class ContextFilter(logging.Filter):
    """Put the current ids on the record (an id given in `extra=` wins). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, process, the ids that are set, `extra=`
    fields, and the traceback as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry and key not in CONTEXT_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # e.g. an int beyond 64 bits in `extra=`: the slower encoder copes
            return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    """The usual one-line format, with the ids that are set at the end: `... [lead_pk=7 task_id=…]`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None))
        if not ids:
            return line
        first, newline, rest = line.partition("\n")  # before a traceback, if any
        return f"{first} [{ids}]{newline}{rest}"


# Celery: the task id is part of the context while a task runs, in whichever process runs it.
_task_tokens: dict[str, contextvars.Token] = {}


@task_prerun.connect
def _task_started(task_id=None, **kwargs) -> None:
    _task_tokens[task_id] = _context.set(MappingProxyType({**_context.get(), "task_id": task_id}))


@task_postrun.connect
def _task_finished(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is None:
        return
    try:
        _context.reset(token)
    except ValueError:  # set in another context (should not happen in a worker): just drop the task id
        _context.set(MappingProxyType({k: v for k, v in _context.get().items() if k != "task_id"}))


@setup_logging.connect
def _keep_django_logging(**kwargs) -> None:
    """A receiver here stops Celery from replacing the root logger's handlers with its own format: workers log
    through settings.LOGGING like the web processes (JSON in production). This module is imported while
    Django configures logging, which the worker does before it sets up its own."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


def _json_console() -> bool:
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


# What a worker would otherwise print as bare text beside its JSON lines: warnings raised before Django sets up
# logging (running as root: Celery's SecurityWarning), the start-up banner, and the shutdown notice.
@celeryd_init.connect
def _log_from_the_start(**kwargs) -> None:
    _keep_django_logging()
    logging.captureWarnings(True)


@celeryd_after_setup.connect
def _banner_as_one_line(sender=None, instance=None, **kwargs) -> None:
    """With JSON logs, the worker's start-up banner (a dozen lines of text printed to stdout) becomes one
    record instead. `--quiet` drops it either way."""
    if instance is None or instance.quiet or not _json_console():
        return
    instance.quiet = True
    logging.getLogger("celery.apps.worker").info(
        "Worker %s starting.", sender, extra={"banner": instance.startup_info(artlines=False)}
    )


@worker_ready.connect
def _shutdown_notice_as_a_record(sender=None, **kwargs) -> None:
    """Celery writes "worker: Warm shutdown (MainProcess)" straight to stdout on SIGTERM (what a supervisor
    sends); with JSON logs the same handler is installed without it, and the record below says it instead."""
    if not _json_console():
        return
    from celery.apps import worker as worker_program

    worker_program.install_worker_term_handler(sender.controller, verbose=False)


@worker_shutting_down.connect
def _log_shutdown(sender=None, sig=None, how=None, **kwargs) -> None:
    logging.getLogger("celery.apps.worker").info("Worker %s: %s shutdown on %s.", sender, how, sig)
