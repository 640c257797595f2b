"""structlog configuration: one event per line, JSON unless stderr is a terminal.

Every logger is bound with ``node`` and ``actor`` by its owner
(``log = get_logger().bind(node=1, actor="gateway")``), so each line says where it
came from.
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure_logging(level: str = "info", stream=None) -> None:
    stream = stream or sys.stderr
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if stream.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**bindings):
    if structlog.is_configured():
        return structlog.get_logger().bind(**bindings)
    # The client library inside someone else's program, which configured nothing:
    # go through the standard logging module ("zkactors"), which shows warnings
    # and worse on stderr unless that program says otherwise — rather than
    # structlog's default of printing every line to stdout.
    return structlog.wrap_logger(
        logging.getLogger("zkactors"),
        # logging's own exception() adds the traceback: don't render it twice.
        processors=[_drop_exc_info, structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.BoundLogger,
    ).bind(**bindings)


def _drop_exc_info(logger, method, event_dict):
    event_dict.pop("exc_info", None)
    return event_dict
