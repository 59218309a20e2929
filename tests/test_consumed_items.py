"""ConsumedItems: a ragged per-user history kept as int32 while ids fit, int64 to callers."""

import numpy as np

from recarena.agents.users.memory import ConsumedItems
from recarena.simulator.core.types import PAD_ITEM


def test_histories_grow_past_the_width_and_come_back_as_int64():
    consumed = ConsumedItems(4, width=2)
    for step in range(5):
        consumed.add(np.array([0, 2]), np.array([10 + step, 20 + step]))
    consumed.add(np.array([1]), np.array([7]))
    got = consumed.for_users(np.array([2, 1, 3]))
    assert got.dtype == np.int64
    assert got.tolist() == [[20, 21, 22, 23, 24], [7] + [PAD_ITEM] * 4, [PAD_ITEM] * 5]
    assert consumed.last(np.array([0, 1, 3])).tolist() == [14, 7, PAD_ITEM]
    assert consumed.at(np.array([[0], [2]]), np.array([[0, 4]])).tolist() == [[10, 14], [20, 24]]


def test_an_id_beyond_int32_switches_the_table_to_int64_without_losing_rows():
    consumed = ConsumedItems(3)
    consumed.add(np.array([0, 1]), np.array([5, 6]))
    assert consumed.matrix.dtype == np.int32
    big = 2**31 + 11
    consumed.add(np.array([1, 2]), np.array([big, 9]))
    assert consumed.matrix.dtype == np.int64
    assert consumed.for_users(np.array([0, 1, 2])).tolist() == [
        [5, PAD_ITEM],
        [6, big],
        [9, PAD_ITEM],
    ]
    assert consumed.last(np.array([1])).tolist() == [big]
