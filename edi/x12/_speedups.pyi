# The compiled fast path (edi/x12/_speedups.c); edi/x12/fastpath.py documents the contract.
from collections.abc import Callable
from typing import Any

def split_uniform(
    data: bytes, start: int, stop: int, separator: bytes, base: int, /
) -> tuple[list[bytes], list[int], int] | None: ...
def dispatch(
    target: Any, bodies: list[bytes], offsets: list[int], first_number: int,
    table: dict[bytes, Any], missing: Callable[[Any, bytes, int, int], Any], /
) -> None: ...
