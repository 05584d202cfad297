"""edi837: checks chemotherapy pump coding in X12 837P claim files before the clearinghouse.

The core (``edi.x12``, ``edi.claims``, ``edi.rules``, ``edi.rewrite``, ``edi.report``) opens no
file, socket or database and reads no clock or environment variable; the front ends in
``edi.adapters`` and ``edi.cli`` own all I/O.

``EDI837_PURE_PYTHON=1`` runs the fast path's Python functions instead of its compiled extension
(``edi.x12.fastpath``). It is read here, the one place loaded before the core, so the core
itself reads no environment.
"""

import os as _os
import sys as _sys

if _os.environ.get("EDI837_PURE_PYTHON", "") not in ("", "0"):
    _sys.modules.setdefault("edi.x12._speedups", None)  # type: ignore[arg-type]  # None: import fails

__version__ = "0.1.0"
