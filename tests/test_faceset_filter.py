"""Set-level filtering helpers (the full refilter runs on real face sets in tests/test_extract.py)."""
from doppel import extract, faceset_filter


def test_spread_takes_evenly_spaced_items_and_all_when_asked_for_none():
    assert faceset_filter.spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert faceset_filter.spread(list(range(3)), 5) == [0, 1, 2]
    assert faceset_filter.spread(list(range(7)), 0) == list(range(7))


def test_rounded_flattens_to_five_decimals():
    assert faceset_filter.rounded([[0.123456789, 2], [3, -1.0000049]]) == [0.12346, 2.0, 3.0, -1.0]


def test_extract_uses_the_same_functions():
    assert extract.refilter is faceset_filter.refilter and extract.apply_filters is faceset_filter.apply_filters
