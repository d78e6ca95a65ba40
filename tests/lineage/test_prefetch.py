"""The import's background reader: items in order, a reading error raised when its item is due."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.lineage.prefetch import prefetched


def test_items_come_in_order_and_all_of_them():
    assert list(prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]
    assert list(prefetched(iter([]))) == []


def test_an_error_reading_an_item_comes_after_the_items_before_it():
    def chunks() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("row 3: bad")

    seen = []
    with pytest.raises(ValueError, match="row 3"):
        for item in prefetched(chunks()):
            seen.append(item)
    assert seen == [1, 2]
