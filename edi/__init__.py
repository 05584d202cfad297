"""edi837: checks chemotherapy pump coding in X12 837P claim files before the clearinghouse.

The core (``edi.x12``, ``edi.claims``, ``edi.rules``, ``edi.rewrite``, ``edi.report``) opens no
file, socket or database and reads no clock or environment variable; the front ends in
``edi.adapters`` and ``edi.cli`` own all I/O.
"""

__version__ = "0.1.0"
