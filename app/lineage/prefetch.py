"""Reading the next chunk of an import while the database writes the current one."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_END = object()


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """`items`, each produced in a background thread while the caller handles the one before.

    Parsing and hashing a chunk is Python work; writing one is mostly waiting on the database,
    which releases the interpreter lock, so the two overlap. An exception raised while producing
    an item is raised here, in order, when that item is due."""

    def produce() -> T | object:
        return next(items, _END)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-reader") as pool:
        pending = pool.submit(produce)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(produce)
            yield item  # type: ignore[misc]
