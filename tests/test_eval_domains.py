"""Domain edge cases of the evaluator: items without a domain, domains without test targets.

Before: an item with no domain got index 0 and so counted as the first domain (its hits went
into that domain's table and its candidates into that domain's ranking), and a domain with no
targets simply vanished from the macro average without a trace.
"""

from __future__ import annotations

import polars as pl

from recpipe.eval.data import UNKNOWN, from_frames
from recpipe.eval.evaluator import evaluate
from recpipe.eval.protocol import resolve
from recpipe.eval.scorers import FunctionScorer


def frame(pairs):
    return pl.DataFrame({"uid": [u for u, _ in pairs], "iid": [i for _, i in pairs]},
                        schema={"uid": pl.Int64, "iid": pl.Int64})


def data_with(domains: dict[int, str | None], n_items: int, test):
    dom = pl.DataFrame({"iid": list(domains), "domain": list(domains.values())},
                       schema={"iid": pl.Int64, "domain": pl.Utf8})
    return from_frames(frame([(0, 0)]), frame([]), frame(test), 2, n_items, dom)


def by_index(n_items: int) -> FunctionScorer:
    """Item i scores -i for every user: the ranking is 0, 1, 2, ..."""
    import numpy as np

    row = -np.arange(n_items, dtype=np.float32)
    return FunctionScorer(lambda users: np.tile(row, (len(users), 1)), n_items)


def test_items_without_a_domain_get_an_explicit_unknown_domain():
    # items 0-1 Books, 2-3 Games; item 4 null, item 5 "" and item 6 absent from the table
    data = data_with({0: "Books", 1: "Books", 2: "Games", 3: "Games", 4: None, 5: ""}, 7,
                     test=[(1, 4)])
    assert data.domains == ["Books", "Games", UNKNOWN]
    assert [data.domains[d] for d in data.item_domain] == ["Books"] * 2 + ["Games"] * 2 + [UNKNOWN] * 3
    s = evaluate(by_index(7), data, resolve({"preset": "unified"}), "test").summary
    # user 1's only target is item 4: it is an `unknown` hit, not a Books one
    assert s[f"recall@20/{UNKNOWN}"] == 1.0
    assert "recall@20/Books" not in s


def test_data_with_complete_domains_has_no_unknown():
    data = data_with({0: "Books", 1: "Games"}, 2, test=[(1, 1)])
    assert data.domains == ["Books", "Games"]


def test_domains_without_test_targets_are_named_in_the_metrics():
    data = data_with({0: "Books", 1: "Books", 2: "Games", 3: "Games", 4: "Toys"}, 5,
                     test=[(1, 2)])
    s = evaluate(by_index(5), data, resolve({"preset": "unified"}), "test").summary
    assert s["domains_without_targets"] == ["Books", "Toys"]
    assert s["domains_without_targets_count"] == 2
    # the macro average is over the domains that have targets, which is why they are named
    assert s["recall@20/macro"] == s["recall@20/Games"]


def test_every_domain_with_targets_gives_an_empty_list():
    data = data_with({0: "Books", 1: "Games"}, 2, test=[(1, 1), (0, 1), (1, 0)])
    s = evaluate(by_index(2), data, resolve({"preset": "unified"}), "test").summary
    assert s["domains_without_targets"] == [] and s["domains_without_targets_count"] == 0
