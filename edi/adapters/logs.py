"""Logging set-up: structlog to stderr, JSON when stderr is not a terminal, PHI kept out.

Claim files are PHI, so log events pass through an allowlist of keys: anything not on it is
dropped before rendering (a count of dropped keys is kept so a mistake shows up in tests).
Values of allowed keys must be counts, codes, hashes or positions; the allowlist only holds
keys whose values are such by construction. Tracebacks are rendered without frame locals
(structlog's ``dict_tracebacks`` would dump ``show_locals=True`` frames full of patient data),
and the exception message is replaced by its type and code: messages may quote data.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

ALLOWED_KEYS = frozenset({
    "event", "level", "timestamp", "logger",
    "file_id", "bytes", "segments", "claims", "lines", "transactions", "findings", "errors",
    "notes", "rules", "rule", "code", "codes", "segment", "offset", "exit_code", "status",
    "duration_ms", "count", "mode", "partner", "attempt", "applied", "dropped", "replaced",
    "outcome", "files", "host", "port", "workers", "backoff_s", "error_type", "error_code",
    "history", "ledger", "reason", "method", "route", "http_status", "request_id", "size",
    # serve's start-up line: its limits
    "threads", "time_limit_s", "max_bytes", "max_pending", "max_connections", "keep_alive_timeout_s",
    "header_timeout_s", "body_timeout_s", "state",
})

# The standard library's numbers; `logging` itself is imported only when structlog is loaded.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}


_configured: dict[str, Any] = {"level": WARNING, "stream": None}


class _LazyLogger:
    """Filters by level before structlog is even imported.

    Importing structlog (and the asyncio it pulls in) costs about 35 ms of start-up, a tenth of
    a whole ``validate`` run on a 20k-claim file; at the default level nothing is logged, so
    structlog is loaded on the first event that will actually be written.
    """

    __slots__ = ("_bound", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None

    def _log(self, level: int, method: str, event: str, /, **fields: Any) -> None:
        if level < _configured["level"]:
            return
        if self._bound is None:
            _load_structlog()
            import structlog

            self._bound = structlog.get_logger(self._name)
        getattr(self._bound, method)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(DEBUG, "debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(INFO, "info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(WARNING, "warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(ERROR, "error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(ERROR, "error", event, exc_info=True, **fields)


def keep_allowed_keys(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop every key not on the allowlist; never let an exception's text through."""
    error = event.pop("exc_info", None)
    if error:
        info = sys.exc_info() if error is True else error
        exc = info[1] if isinstance(info, tuple) else info
        if exc is not None:
            event["error_type"] = type(exc).__name__
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                event["error_code"] = code
    dropped = [key for key in event if key not in ALLOWED_KEYS]
    for key in dropped:
        del event[key]
    if dropped:
        event["dropped"] = len(dropped)
    return event


def configure(level: str | None = None, stream: TextIO | None = None) -> None:
    """Set the level and stream once per process (front ends only; the core never does)."""
    name = (level or os.environ.get("EDI837_LOG_LEVEL") or "warning").lower()
    _configured["level"] = LEVELS.get(name, WARNING)
    _configured["stream"] = stream
    _configured["loaded"] = False


def _load_structlog() -> None:
    if _configured.get("loaded"):
        return
    import logging

    import structlog

    # Libraries that log through stdlib logging (pyx12 puts data values in its messages) are
    # kept silent: only edi837's own allowlisted events are written.
    root = logging.getLogger()
    root.handlers[:] = [logging.NullHandler()]
    root.setLevel(logging.CRITICAL + 1)

    numeric = _configured["level"]
    out = _configured["stream"] or sys.stderr
    renderer: Any
    if hasattr(out, "isatty") and out.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            keep_allowed_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _configured["loaded"] = True


def enabled(level: int) -> bool:
    """Whether events of this level are written (skip work that only feeds a log line)."""
    return level >= _configured["level"]


def get_logger(name: str = "edi837") -> Any:
    return _LazyLogger(name)
