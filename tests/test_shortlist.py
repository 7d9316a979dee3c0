"""bench_ir.shortlist: the first few of many items named, the rest counted."""

from bench_ir.shortlist import shortlist


def test_all_items_are_named_when_they_fit():
    assert shortlist(["a.png", "b.png"], 2) == "a.png, b.png"


def test_items_past_the_shown_count_are_counted():
    assert shortlist(["a", "b", "c", "d"], 2) == "a, b ... and 2 more"


def test_separator_and_wording_are_the_callers():
    assert shortlist(["x", "y", "z"], 1, separator="; ", more=" (and {} more)") == "x (and 2 more)"
    assert shortlist(["x", "y", "z"], 2, separator="; ") == "x; y ... and 1 more"


def test_an_empty_list_reads_as_nothing():
    assert shortlist([], 5) == ""
