"""Each paper preset against a literal, slow, per-user Python reference written from
evaluation.md (sections 2, 3, 5), on random splits and random scores (with and without ties).

The references deliberately share nothing with `recpipe.eval`: a plain loop over users, the
ranking by Python `sorted` with key (-score, item) (ties -> smaller index, section 1), then
that paper's masks, candidates, denominators, IDCG and averaging. Scores are a fixed float32
table (n_users, n_items), so the reference and the evaluator rank the very same numbers.
"""

from __future__ import annotations

import math
from statistics import mean

import numpy as np
import polars as pl
import pytest

from recpipe.eval.data import from_frames
from recpipe.eval.evaluator import evaluate
from recpipe.eval.protocol import resolve
from recpipe.eval.scorers import FunctionScorer

N_USERS, N_ITEMS = 60, 150  # K = 100 (cllm4rec, unified) needs a catalogue larger than K
DOMAINS = ["Books", "Toys"]
SEEDS = [0, 1, 2]
NEG_INF = float("-inf")


# ------------------------------------------------------------------ random data

class Split:
    """Per-user item sets (the reference's view) and the evaluator's `SplitData`."""

    def __init__(self, train, valid, test, item_domain: list[str] | None = None):
        self.sets = {"train": train, "valid": valid, "test": test}
        self.item_domain = item_domain

    def data(self):
        def frame(sets):
            pairs = [(u, i) for u, items in enumerate(sets) for i in sorted(items)]
            return pl.DataFrame({"uid": [p[0] for p in pairs], "iid": [p[1] for p in pairs]},
                                schema={"uid": pl.Int64, "iid": pl.Int64})
        dom = None
        if self.item_domain is not None:
            dom = pl.DataFrame({"iid": list(range(N_ITEMS)), "domain": self.item_domain})
        return from_frames(*(frame(self.sets[p]) for p in ("train", "valid", "test")),
                           N_USERS, N_ITEMS, dom)


def multi_target(seed: int, every_user: bool = False, domains: bool = False) -> Split:
    """Random per-interaction 3:1:1 split; some users lack a validation or test item unless
    `every_user` (then each user has >= 1 item in every part, as CLLM4Rec's protocol needs)."""
    rng = np.random.default_rng(seed)
    train, valid, test = [], [], []
    for u in range(N_USERS):
        n = int(rng.integers(3, 30))
        items = rng.choice(N_ITEMS, n, replace=False).tolist()
        part = rng.choice(3, n, p=[0.6, 0.2, 0.2])
        if every_user:
            part[:3] = [0, 1, 2]
        elif u == 0:
            part[:] = 0  # user 0: no validation and no test item
        train.append({i for i, p in zip(items, part) if p == 0})
        valid.append({i for i, p in zip(items, part) if p == 1})
        test.append({i for i, p in zip(items, part) if p == 2})
    dom = rng.choice(DOMAINS, N_ITEMS).tolist() if domains else None
    return Split(train, valid, test, dom)


def loo(seed: int) -> Split:
    """Leave-one-out sequences: train items[:-2], validation items[-2], test items[-1]."""
    rng = np.random.default_rng(seed)
    train, valid, test = [], [], []
    for _ in range(N_USERS):
        seq = rng.choice(N_ITEMS, int(rng.integers(3, 15)), replace=False).tolist()
        train.append(set(seq[:-2]))
        valid.append({seq[-2]})
        test.append({seq[-1]})
    return Split(train, valid, test)


def one_target_per_domain(seed: int) -> Split:
    """Two domains; each user has at most one validation and one test target per domain (so a
    (user, domain) unit is exactly one HUM sample), and every item occurs in some train set."""
    rng = np.random.default_rng(seed)
    dom = rng.choice(DOMAINS, N_ITEMS).tolist()
    by_dom = {d: [i for i in range(N_ITEMS) if dom[i] == d] for d in DOMAINS}
    train = [set() for _ in range(N_USERS)]
    for i in range(N_ITEMS):
        train[i % N_USERS].add(i)
    for u in range(N_USERS):
        train[u] |= set(rng.choice(N_ITEMS, int(rng.integers(0, 10)), replace=False).tolist())
    valid, test = [], []
    for u in range(N_USERS):
        va, te = set(), set()
        for d in DOMAINS:
            free = [i for i in by_dom[d] if i not in train[u]]
            pick = rng.choice(free, 2, replace=False).tolist()
            if rng.random() < 0.7:
                va.add(pick[0])
            if rng.random() < 0.7:
                te.add(pick[1])
        valid.append(va)
        test.append(te)
    return Split(train, valid, test, dom)


def score_table(seed: int, ties: bool) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    if ties:  # five distinct values: many ties, also at every cut-off
        return rng.integers(0, 5, size=(N_USERS, N_ITEMS)).astype(np.float32)
    return rng.normal(size=(N_USERS, N_ITEMS)).astype(np.float32)


def scorer(table: np.ndarray) -> FunctionScorer:
    return FunctionScorer(lambda users: table[users], N_ITEMS)


# ------------------------------------------------------------------ reference pieces

def ranked(row: list[float], candidates, masked: set) -> list[int]:
    """Candidates minus masked, best first; equal scores -> smaller item index first."""
    keep = [i for i in candidates if i not in masked and row[i] != NEG_INF]
    return sorted(keep, key=lambda i: (-row[i], i))


def dcg(top: list[int], targets: set) -> float:
    return sum(1.0 / math.log2(r + 1) for r, i in enumerate(top, start=1) if i in targets)


def ideal(n: int) -> float:
    return sum(1.0 / math.log2(r + 1) for r in range(1, n + 1))


def multi_metrics(order: list[int], targets: set, ks: list[int], idcg: str) -> dict:
    """Section 2 formulas for one multi-target unit."""
    out = {}
    k_max = max(ks)
    hits_kmax = len(set(order[:k_max]) & targets)
    for k in ks:
        top = order[:k]
        hits = len(set(top) & targets)
        out[f"recall@{k}"] = hits / len(targets)
        out[f"recall_trunc@{k}"] = hits / min(k, len(targets))
        out[f"precision@{k}"] = hits / k
        out[f"hr@{k}"] = 1.0 if hits >= 1 else 0.0
        first = next((r for r, i in enumerate(top, start=1) if i in targets), None)
        out[f"mrr@{k}"] = 1.0 / first if first else 0.0
        if idcg == "standard":
            norm = ideal(min(k, len(targets)))
        else:  # retrieved hits: IDCG over min(K, hits@K_max), 0 when nothing is retrieved
            norm = ideal(min(k, hits_kmax))
        out[f"ndcg@{k}"] = dcg(top, targets) / norm if norm > 0 else 0.0
    return out


def single_metrics(rank: int | None, ks: list[int]) -> dict:
    """Single target at 1-based `rank` (None: not ranked): HR, NDCG with IDCG 1, MRR, P."""
    out = {}
    for k in ks:
        hit = rank is not None and rank <= k
        out[f"hr@{k}"] = out[f"recall@{k}"] = 1.0 if hit else 0.0
        out[f"ndcg@{k}"] = 1.0 / math.log2(rank + 1) if hit else 0.0
        out[f"mrr@{k}"] = 1.0 / rank if hit else 0.0
        out[f"precision@{k}"] = (1.0 if hit else 0.0) / k
    return out


def average(units: list[dict]) -> dict:
    return {key: mean(u[key] for u in units) for key in units[0]}


def keep(d: dict, names: tuple[str, ...]) -> dict:
    return {k: v for k, v in d.items() if k.split("@")[0] in names}


# ------------------------------------------------------------------ per-paper references

def ref_rlmrec(split: Split, table: np.ndarray, part: str) -> dict:
    """RLMRec: train items masked (validation items stay candidates at test), full recall,
    standard NDCG, mean over users with >= 1 target; K = 5, 10, 20."""
    ks, units = [5, 10, 20], []
    for u in range(N_USERS):
        targets = split.sets[part][u]
        if not targets:
            continue
        order = ranked(table[u].tolist(), range(N_ITEMS), split.sets["train"][u])
        units.append(multi_metrics(order, targets, ks, "standard"))
    out = keep(average(units), ("recall", "ndcg", "precision", "hr"))
    out["units"] = len(units)
    return out


def ref_cllm4rec(split: Split, table: np.ndarray, part: str) -> dict:
    """CLLM4Rec: train masked, recall = hits / min(K, |T|), standard NDCG, mean over ALL users
    (each must have a target); K = 20, 40, 100."""
    ks, units = [20, 40, 100], []
    for u in range(N_USERS):
        targets = split.sets[part][u]
        assert targets, "the reference needs every user to have a target"
        order = ranked(table[u].tolist(), range(N_ITEMS), split.sets["train"][u])
        m = multi_metrics(order, targets, ks, "standard")
        m.update({f"recall@{k}": m.pop(f"recall_trunc@{k}") for k in ks})
        units.append(m)
    return keep(average(units), ("recall", "ndcg", "precision", "hr"))


def ref_hellm(split: Split, table: np.ndarray, part: str) -> dict:
    """HeLLM: single target, full ranking over all items, nothing excluded; P, R (= HR), MRR,
    NDCG at 5, 10, 20, averaged over the users (all users have a target under LOO)."""
    ks, units = [5, 10, 20], []
    for u in range(N_USERS):
        (t,) = split.sets[part][u]
        order = ranked(table[u].tolist(), range(N_ITEMS), set())
        units.append(single_metrics(order.index(t) + 1, ks))
    return average(units)


def ref_mmhcl(split: Split, table: np.ndarray, part: str) -> dict:
    """MMHCL: candidates = all items - train items, top K_max = 20, full recall, retrieved-hits
    NDCG, precision and hit; mean over users with targets; K = 10, 20."""
    ks, units = [10, 20], []
    for u in range(N_USERS):
        targets = split.sets[part][u]
        if not targets:
            continue
        candidates = [i for i in range(N_ITEMS) if i not in split.sets["train"][u]]
        order = ranked(table[u].tolist(), candidates, set())
        units.append(multi_metrics(order, targets, ks, "retrieved_hits"))
    return keep(average(units), ("recall", "ndcg", "precision", "hr"))


def ref_hum(split: Split, table: np.ndarray, part: str) -> dict:
    """HUM: one sample per (user, target); candidates = the target domain's items (validation:
    those seen in train or validation; test: all of the domain); history not excluded; HR and
    single-target NDCG at 1, 5, 10, 20; mean over samples, per target domain, and macro."""
    ks = [1, 5, 10, 20]
    dom = split.item_domain
    seen = set().union(*split.sets["train"], *split.sets["valid"])
    samples: dict[str, list[dict]] = {d: [] for d in DOMAINS}
    for u in range(N_USERS):
        for t in sorted(split.sets[part][u]):
            d = dom[t]
            cands = [i for i in range(N_ITEMS) if dom[i] == d and (part == "test" or i in seen)]
            order = ranked(table[u].tolist(), cands, set())
            samples[d].append(single_metrics(order.index(t) + 1, ks))
    out = average([s for d in DOMAINS for s in samples[d]])
    out["units"] = sum(len(s) for s in samples.values())
    per = {d: average(samples[d]) for d in DOMAINS}
    for key in per[DOMAINS[0]]:
        for d in DOMAINS:
            out[f"{key}/{d}"] = per[d][key]
        out[f"{key}/macro"] = mean(per[d][key] for d in DOMAINS)
        out[f"{key}/spread"] = max(per[d][key] for d in DOMAINS) - min(per[d][key] for d in DOMAINS)
    return out


def ref_unified(split: Split, table: np.ndarray, part: str) -> dict:
    """Project preset: train masked at validation, train AND validation masked at test; full
    and truncated recall both logged; standard NDCG; users with targets; K = 5..100. On
    multi-domain data also per domain (units: users with a target in d, targets restricted to
    d, ranked over all items) and their unweighted (macro) mean."""
    ks = [5, 10, 20, 40, 100]
    names = ("recall", "recall_trunc", "ndcg", "precision", "hr")
    units, per_dom = [], {d: [] for d in DOMAINS}
    for u in range(N_USERS):
        targets = split.sets[part][u]
        if not targets:
            continue
        masked = set(split.sets["train"][u])
        if part == "test":
            masked |= split.sets["valid"][u]
        order = ranked(table[u].tolist(), range(N_ITEMS), masked)
        units.append(multi_metrics(order, targets, ks, "standard"))
        if split.item_domain is not None:
            for d in DOMAINS:
                in_d = {i for i in targets if split.item_domain[i] == d}
                if in_d:
                    per_dom[d].append(multi_metrics(order, in_d, ks, "standard"))
    out = keep(average(units), names)
    out["units"] = len(units)
    if split.item_domain is not None:
        per = {d: keep(average(per_dom[d]), names) for d in DOMAINS}
        for key in per[DOMAINS[0]]:
            for d in DOMAINS:
                out[f"{key}/{d}"] = per[d][key]
            out[f"{key}/macro"] = mean(per[d][key] for d in DOMAINS)
            out[f"{key}/spread"] = (max(per[d][key] for d in DOMAINS)
                                    - min(per[d][key] for d in DOMAINS))
    return out


# ------------------------------------------------------------------ comparisons

def check(reference: dict, preset: str, split: Split, table: np.ndarray, part: str, **extra) -> dict:
    got = evaluate(scorer(table), split.data(), resolve({"preset": preset, **extra}), part).summary
    missing = set(reference) - set(got)
    assert not missing, f"evaluator summary lacks {sorted(missing)}"
    for key, want in reference.items():
        assert got[key] == pytest.approx(want, abs=1e-9, rel=0), key
    return got


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("part", ["valid", "test"])
def test_rlmrec(seed, ties, part):
    split = multi_target(seed)
    got = check(ref_rlmrec(split, score_table(seed, ties), part), "rlmrec", split,
                score_table(seed, ties), part)
    assert "recall_trunc@20" not in got  # RLMRec logs only the full denominator


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("part", ["valid", "test"])
def test_cllm4rec(seed, ties, part):
    split = multi_target(seed, every_user=True)
    check(ref_cllm4rec(split, score_table(seed, ties), part), "cllm4rec", split,
          score_table(seed, ties), part)


def test_cllm4rec_raises_when_a_user_has_no_target():
    split = multi_target(0)  # user 0 has no test item
    with pytest.raises(ValueError):
        evaluate(scorer(score_table(0, False)), split.data(), resolve({"preset": "cllm4rec"}), "test")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("part", ["valid", "test"])
def test_hellm(seed, ties, part):
    split = loo(seed)
    check(ref_hellm(split, score_table(seed, ties), part), "hellm", split, score_table(seed, ties), part)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("part", ["valid", "test"])
def test_mmhcl(seed, ties, part):
    split = multi_target(seed)
    check(ref_mmhcl(split, score_table(seed, ties), part), "mmhcl", split, score_table(seed, ties), part)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("part", ["valid", "test"])
def test_hum(seed, ties, part):
    # every item occurs in a train set, so HUM's validation candidates are the whole domain
    split = one_target_per_domain(seed)
    check(ref_hum(split, score_table(seed, ties), part), "hum", split, score_table(seed, ties), part)


def test_hum_validation_candidates_are_items_seen_in_train_or_valid():
    split = one_target_per_domain(0)
    # items 0..9 leave every train set: only test targets can still hold them
    for u in range(N_USERS):
        split.sets["train"][u] -= set(range(10))
        split.sets["valid"][u] -= set(range(10))
    table = score_table(0, False)
    table[:, :10] = 100.0  # unseen items would outrank every validation target
    check(ref_hum(split, table, "valid"), "hum", split, table, "valid")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("part", ["valid", "test"])
@pytest.mark.parametrize("domains", [False, True])
def test_unified(seed, ties, part, domains):
    split = multi_target(seed, domains=domains)
    got = check(ref_unified(split, score_table(seed, ties), part), "unified", split,
                score_table(seed, ties), part)
    if not domains:
        assert not any("/" in k for k in got)


def test_presets_differ_where_the_spec_says_they_do():
    """Guards against a reference that is trivially equal everywhere: on the same multi-target
    data the four conventions give four different recall@20 / ndcg@20 values."""
    split, table = multi_target(3, every_user=True), score_table(3, False)
    r = ref_rlmrec(split, table, "test")
    c = ref_cllm4rec(split, table, "test")
    m = ref_mmhcl(split, table, "test")
    un = ref_unified(split, table, "test")
    assert c["recall@20"] >= r["recall@20"]  # truncated >= full
    assert m["ndcg@20"] > r["ndcg@20"]  # retrieved-hits >= standard, strictly here
    assert un["recall@20"] > r["recall@20"]  # masking validation items frees slots
    assert c["recall@40"] > r["recall@20"]
