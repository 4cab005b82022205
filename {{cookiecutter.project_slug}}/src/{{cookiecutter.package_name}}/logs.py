"""Where log lines go and how they look: JSON or console, each tagged with its request id."""

import functools
import json
import logging
import string
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Self

HANDLER_NAME: Final = "{{ cookiecutter.package_name }}"
# The loggers LOG_LEVEL applies to. Other libraries (Alembic, httpx, asyncio...)
# narrate at INFO; they are heard from at WARNING, or at LOG_LEVEL if stricter.
SERVICE_LOGGERS: Final = ("{{ cookiecutter.package_name }}", "uvicorn")

# The id of the request being served, set by RequestLogMiddleware. A context
# variable follows the request into the tasks it starts and into SQLAlchemy's
# greenlets, so SQL echo and pool records carry the id of the request behind them.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

# Under overload the same warning would come with every request; a burst of
# them is logged as one line at most this often, with its count.
REPORT_INTERVAL_SECONDS: Final = 10.0


class LogFormat(StrEnum):
    """How log lines are written."""

    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    """The least severe log records that are written."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        # LOG_LEVEL=info is as common a spelling as LOG_LEVEL=INFO.
        return cls.__members__.get(value.upper()) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How the service writes its log lines."""

    format: LogFormat
    level: LogLevel
    # LOG_CONSOLE_FORMAT: the console line as the team wants it; None keeps the default.
    console_format: str | None = None


# The fields a LOG_CONSOLE_FORMAT may name, as in "{time} {level} {request_id} {logger}: {message}".
CONSOLE_FIELDS: Final = ("time", "level", "request_id", "logger", "message")


def console_format(value: str) -> str:
    """Accept a console line format in str.format syntax that names only CONSOLE_FIELDS."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = sorted(names - set(CONSOLE_FIELDS))
        if not unknown:
            value.format_map(dict.fromkeys(CONSOLE_FIELDS, ""))
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a format string ({error})") from None
    if unknown:
        fields = ", ".join("{" + name + "}" for name in CONSOLE_FIELDS)
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; use {fields}")
    return value


# By DATABASE_PROFILE: readable lines for a person at a terminal in dev; one
# JSON object per line for a log collector everywhere else.
LOG_PROFILES: Final[Mapping[str, LogSettings]] = MappingProxyType(
    {
        "dev": LogSettings(format=LogFormat.CONSOLE, level=LogLevel.INFO),
        "prod": LogSettings(format=LogFormat.JSON, level=LogLevel.INFO),
        "high-traffic": LogSettings(format=LogFormat.JSON, level=LogLevel.INFO),
    }
)

# SQL echo's notes on an autocommit connection (every read's): BEGIN, COMMIT
# and ROLLBACK that do nothing there, in wording that reads like a failure.
_AUTOCOMMIT_NOTES: Final = (
    "BEGIN (implicit; DBAPI should not BEGIN",
    "COMMIT using DBAPI connection.commit()",
    "ROLLBACK using DBAPI connection.rollback()",
    "ROLLBACK will be skipped by skip_autocommit_rollback",
)

# What every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    # uvicorn's copy of some messages with terminal colour codes in it.
    "color_message",
}
# json.dumps with `default` builds a new encoder on every call; this one is
# made once. It escapes line breaks, control characters and non-ASCII text,
# so nothing a client sends can start a log line of its own; `default=str`
# keeps a value JSON cannot hold from losing the whole record.
_JSON: Final = json.JSONEncoder(default=str)


@dataclass(slots=True)
class BurstReport:
    """Like events counted between log lines, so that a burst of them gets one line."""

    unreported: int = 0
    last_report: float | None = None

    def add(self) -> int:
        """Count one event; return how many to log now, or 0 if the last line is too recent."""
        self.unreported += 1
        now = time.monotonic()
        if self.last_report is not None and now - self.last_report < REPORT_INTERVAL_SECONDS:
            return 0
        count, self.unreported, self.last_report = self.unreported, 0, now
        return count


class RequestIdFilter(logging.Filter):
    """Tag every record with the id of the request being served (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set `record.request_id`; never drop a record."""
        record.request_id = current_request_id.get()
        return True


class AutocommitNoteFilter(logging.Filter):
    """Drop SQL echo's notes on transactions an autocommit connection does not have."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but those notes."""
        return not (isinstance(record.msg, str) and record.msg.startswith(_AUTOCOMMIT_NOTES))


class JsonFormatter(logging.Formatter):
    """Write each record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record's time, level, logger, message, request id and extra fields."""
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(
            {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _JSON.encode(entry)


class ConsoleFormatter(logging.Formatter):
    """Write each record as one line for a person: level, request id, logger, message."""

    def __init__(self, line_format: str | None = None) -> None:
        super().__init__()
        self.line_format = line_format

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """Return the line without the traceback, which `format` appends."""
        request_id = getattr(record, "request_id", None)
        if self.line_format is not None:
            fields = {
                "time": _utc_timestamp(record.created),
                "level": record.levelname,
                "request_id": request_id or "-",
                "logger": record.name,
                "message": record.message,
            }
            return self.line_format.format_map(fields)
        tag = f"[{request_id}] " if request_id is not None else ""
        return f"{record.levelname + ':':<9} {tag}{record.name}: {record.message}"


def configure_logging(logs: LogSettings) -> None:
    """Send every logger's records to stderr in the configured format; safe to call again."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(RequestIdFilter())
    formatter: logging.Formatter = (
        JsonFormatter() if logs.format is LogFormat.JSON else ConsoleFormatter(logs.console_format)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    # Replaced, not added again: create_app runs once per worker, and again in
    # tests and embedding programs; a second handler would print every line twice.
    # Handlers that others put on the root logger (pytest's, say) are left alone.
    for old in [existing for existing in root.handlers if existing.name == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.getLevelNamesMapping()[logs.level]
    root.setLevel(max(level, logging.WARNING))
    for name in SERVICE_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # uvicorn's own lines (start-up, shutdown, tracebacks) take the same way,
    # however uvicorn was started; its access log is replaced by RequestLogMiddleware's.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.error").setLevel(logging.NOTSET)
    # Without a handler anywhere above it, uvicorn does not even format its line.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    # With echo on, SQLAlchemy gives this logger a stdout handler of its own
    # unless it has one, and every statement would be printed twice.
    sqlalchemy_engine = logging.getLogger("sqlalchemy.engine.Engine")
    if not sqlalchemy_engine.handlers:
        sqlalchemy_engine.addHandler(logging.NullHandler())
    # Echo then shows the statements sent, and the transactions that are real.
    if not any(isinstance(found, AutocommitNoteFilter) for found in sqlalchemy_engine.filters):
        sqlalchemy_engine.addFilter(AutocommitNoteFilter())


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    # Cached: every record of the same second shares this part.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _utc_timestamp(created: float) -> str:
    seconds = int(created)
    return f"{_utc_second(seconds)}.{int((created - seconds) * 1000):03d}Z"
