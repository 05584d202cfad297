"""Failure injection for the reliability tests: ``EDI837_FAULT=<action>:<point>[,...]``.

Actions: ``kill`` (SIGKILL at the point: no cleanup, as a power cut), ``raise`` (an unexpected
exception whose message quotes data, as a third-party library would: the front ends must never
show it), ``disconnect`` (close the history store's connection: the database goes away mid-run).
Points are named where ``checkpoint`` is called (``check.after_pass1``, ``fix.before_rename``,
``fix.after_rename``, ``history.before_record``). Unset in production: one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

ENV = "EDI837_FAULT"


def _plan() -> dict[str, str]:
    plan = {}
    for item in filter(None, os.environ.get(ENV, "").split(",")):
        action, _, point = item.partition(":")
        plan[point] = action
    return plan


def checkpoint(point: str, *, history: Any = None, data: Callable[[], bytes] | None = None) -> None:
    """``data`` is called only when a ``raise`` fault fires: it stands for what a failing library
    would quote, and costs nothing in production."""
    action = _plan().get(point)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        quoted = data()[:400] if data is not None else b""
        raise RuntimeError(f"injected fault at {point}: {quoted!r}")
    elif action == "disconnect" and history is not None:
        history.close()
