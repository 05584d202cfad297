"""The parsed TOML documents of the rule files, kept between runs for the files' exact bytes.

Parsing the four rule files with ``tomllib`` costs ~38 M instructions a run (8-10 ms), and
importing ``tomllib`` more: more than all the rest of loading the rule book, paid by every
``edi837 validate`` however small its file. As Python keeps bytecode in ``__pycache__``, edi837
keeps the parsed documents in a cache folder: ``$EDI837_CACHE_DIR``, else
``$XDG_CACHE_HOME/edi837``, else ``~/.cache/edi837``; ``EDI837_CACHE_DIR=off`` turns it off.

A cache file holds the rule files' bytes beside their documents, and is used only when those
bytes equal the files read now, byte for byte: an edited rule, another ``--rules`` folder or a
stale or damaged cache file is parsed anew (and the cache rewritten). The files are ``marshal``
data, written atomically, readable by their owner only, in a folder only the owner can enter;
any failure to read or write the cache (a read-only home, a full disk) is ignored: the files are
parsed as without it. Rule files hold no patient data.
"""

from __future__ import annotations

import binascii
import contextlib
import marshal
import os
from datetime import date, datetime, time
from typing import Any

FORMAT = 1  # bump when what is stored changes
OFF = "off"
_TAG = "\x00toml-date"  # TOML dates and times are not marshal values: stored as tagged tuples


def cache_folder() -> str | None:
    folder = os.environ.get("EDI837_CACHE_DIR")
    if folder == OFF:
        return None
    if folder:
        return folder
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edi837")


def _path(folder: str, files: dict[str, bytes]) -> str:
    checksum = 0
    for name in sorted(files):
        checksum = binascii.crc32(files[name], binascii.crc32(name.encode(), checksum))
    return os.path.join(folder, f"rules-{checksum:08x}.marshal")


def load(files: dict[str, bytes]) -> dict[str, dict[str, Any]] | None:
    """The documents parsed from exactly these files' bytes, if the cache holds them."""
    folder = cache_folder()
    if folder is None:
        return None
    try:
        with open(_path(folder, files), "rb") as handle:
            stored = marshal.load(handle)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(stored, tuple) and len(stored) == 3 and stored[0] == FORMAT and stored[1] == files):
        return None
    documents = stored[2]
    return {name: _decoded(document) for name, document in documents.items()}


def store(files: dict[str, bytes], documents: dict[str, dict[str, Any]]) -> None:
    """Keep the documents for these bytes; nothing happens when the cache cannot be written."""
    folder = cache_folder()
    if folder is None:
        return
    try:
        data = marshal.dumps((FORMAT, files, {name: _encoded(doc) for name, doc in documents.items()}))
    except ValueError:  # a value marshal cannot hold: no cache, nothing lost
        return
    path = _path(folder, files)
    temporary = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)  # a cache: no fsync, a torn file fails its check and is parsed anew
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


def _encoded(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _encoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encoded(item) for item in value]
    if isinstance(value, datetime | date | time):
        return (_TAG, type(value).__name__, value.isoformat())
    return value


_TYPES: dict[str, Any] = {"date": date, "datetime": datetime, "time": time}


def _decoded(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    if isinstance(value, tuple) and len(value) == 3 and value[0] == _TAG:  # TOML itself has no tuples
        return _TYPES[value[1]].fromisoformat(value[2])
    return value
