"""The gateway's 999 in a process of its own, so the time limit can stop it.

The 999 runs the implementation-guide check (edi837's own since issue 19, pure Python with no
place to check a deadline; ``--ig-engine pyx12`` was about 2 s per thousand claims), and a
thread cannot be stopped from outside: the gateway runs each acknowledgment in
a child process and kills it at the deadline. The children are forks of a fork server that
starts once with pyx12 and this module loaded (never forks of the multi-threaded server). This
module is small on purpose: the child unpickles its target from here, and importing the gateway
(Starlette, uvicorn, the metrics client) would cost each acknowledgment 0.2 s.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

ACK_PROCESSES = multiprocessing.get_context("forkserver")
ACK_PROCESSES.set_forkserver_preload([
    "edi.adapters.ack_process", "edi.adapters.ig_check", "edi.adapters.ig_own", "edi.ig.validator",
    "pyx12.errors", "pyx12.params", "pyx12.x12n_document",  # ig.py imports pyx12 when first used
])


def acknowledge_in_child(results: Any, copy_path: str, report: Any, limits: Any, target: str,
                         ack_sender: str = "") -> None:
    """In the child: the implementation-guide check, the 999 (or TA1) written to ``target``, and
    the checked report sent back; a failure goes back by type only (messages may quote data)."""
    try:
        from edi.adapters.ig_check import check_file
        from edi.ig.acknowledge import AckIdentity

        qualifier, _, sender = ack_sender.partition(":")
        identity = AckIdentity(qualifier=qualifier, sender=sender) if sender else None
        results.send(("done", check_file(copy_path, report, limits=limits, ack_path=target, ack_control=None,
                                         identity=identity)))
    except BaseException as error:  # noqa: BLE001 - see the docstring
        results.send(("failed", type(error).__name__))
