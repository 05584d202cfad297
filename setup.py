"""The compiled fast path (``edi.x12._speedups``); everything else is declared in pyproject.toml.

The extension is optional: an install without a C compiler or the Python headers warns and
runs the same loops in Python (``edi.x12.fastpath``), only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("edi.x12._speedups", ["edi/x12/_speedups.c"], optional=True)])
