"""The embedded default dataset: seeded synthetic reviews written in raw Amazon 2018 format.

`dvc repro` must run offline on a laptop, so the pipeline's default input is generated here
and then read back through the real `amazon2018` reader, exactly like downloaded data.

Latent model (why each piece exists):
- Items live in (domain, theme, facet) cells; themes are shared by all domains (see
  `sample_vocab`), so a user's taste carries over from books to games to home goods and
  cross-domain methods (HUM) have something to learn.
- Users have Dirichlet tastes over themes and, within each theme, over facets; most of a
  user's reviews come from liked cells and a `noise` share from anywhere. Item popularity is
  log-normal (long tail) but is normalised inside each cell, so it only decides *which* item
  of a liked cell is picked: a popularity ranking beats random but cannot find the cell.
- Each item has three keywords and each user favourite keywords per theme (`word_alpha`,
  `word_weight`): inside a liked cell the user prefers items whose words they like, a
  signal that lives only in the text (titles, descriptions, reviews).
- Tastes drift from a start vector to an end vector (`drift`), and a user's reviews are
  ordered along that drift, so sequences carry order signal for SASRec/HeLLM.
- The star rating and the review's wording follow how well the item's cell matches the
  user's taste at that time, so review text and LLM profiles carry real signal.
Every user and item ends with >= `min_count` distinct reviews, so a 5-core keeps everything.

Output is byte-identical for a given config: one seeded numpy Generator plus one seeded
`random.Random` for the text, gzip with mtime=0 and no file name, fixed key order.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from recpipe.config import ParamError, rng
from recpipe.data import sample_text
from recpipe.data.sample_vocab import DOMAINS, THEMES
from recpipe.io import atomic_path, write_json, write_text

N_FACETS = 3  # facets per theme (sample_vocab)
WORDS = 4  # words per facet


@dataclass
class SampleConfig:
    """The `sample` params section (the top-level `seed` fills `seed` unless set here)."""

    n_users: int = field(default=2000, metadata=rng(5, None))
    n_items: int = field(default=1500, metadata=rng(10, None))
    # Amazon 2018 category names; each must have word lists in sample_vocab.DOMAINS.
    domains: list[str] = field(
        default_factory=lambda: ["Books", "Video_Games", "Home_and_Kitchen"]
    )
    n_clusters: int = field(default=10, metadata=rng(2, len(THEMES)))  # shared taste themes
    reviews_per_user_mean: float = field(default=20.0, metadata=rng(1, None))
    taste_alpha: float = field(default=0.2, metadata=rng(0, None, lo_open=True))  # small: focused
    facet_alpha: float = field(default=0.3, metadata=rng(0, None, lo_open=True))
    word_alpha: float = field(default=0.3, metadata=rng(0, None, lo_open=True))  # word taste
    word_weight: float = field(default=2.0, metadata=rng(0, None))  # 0: words do not matter
    domain_alpha: float = field(default=1.5, metadata=rng(0, None, lo_open=True))
    noise: float = field(default=0.1, metadata=rng(0, 1))  # share of taste-blind picks
    popularity_sigma: float = field(default=0.8, metadata=rng(0, 5))  # log-normal tail
    drift: float = field(default=0.3, metadata=rng(0, 1))  # 0: tastes fixed over time
    min_count: int = field(default=5, metadata=rng(1, None))  # min reviews per user and item
    start_year: int = field(default=2012, metadata=rng(1996, 2030))
    end_year: int = field(default=2018, metadata=rng(1996, 2030))
    mean_gap_days: float = field(default=30.0, metadata=rng(1, None))  # between a user's reviews
    dup_review_frac: float = field(default=0.005, metadata=rng(0, 0.5))  # exact duplicate lines
    dup_meta_frac: float = field(default=0.01, metadata=rng(0, 0.5))  # repeated meta asins
    image_variant_frac: float = field(default=0.01, metadata=rng(0, 1))  # 2020 `image` key
    vote_frac: float = field(default=0.15, metadata=rng(0, 1))  # lines that carry `vote`
    seed: int | None = None
    out: Path = Path("data/raw/sample")  # used by stages/sample.py only

    def validate(self) -> None:
        unknown = [d for d in self.domains if d not in DOMAINS]
        if unknown or not self.domains or len(set(self.domains)) != len(self.domains):
            raise ParamError(
                f"sample.domains: {self.domains!r} must be distinct names from "
                f"{', '.join(DOMAINS)}"
            )
        if self.end_year < self.start_year:
            raise ParamError(f"sample.end_year: {self.end_year} is before start_year")
        cells = len(self.domains) * self.n_clusters * N_FACETS
        if self.n_items < cells:
            raise ParamError(f"sample.n_items: {self.n_items} < {cells} (one item per cell)")
        if self.reviews_per_user_mean < self.min_count:
            raise ParamError("sample.reviews_per_user_mean must be >= sample.min_count")
        if self.n_users < self.min_count:
            raise ParamError("sample.n_users must be >= sample.min_count")


def generate(cfg: SampleConfig, out_dir: Path) -> dict:
    """Write the sample dataset into `out_dir`; return counts (also saved in generator.json)."""
    cfg.validate()
    out_dir = Path(out_dir)
    mine = {f"{d}_5.json.gz" for d in cfg.domains} | {f"meta_{d}.json.gz" for d in cfg.domains}
    foreign = sorted(p.name for p in out_dir.glob("*.json*") if p.name not in mine
                     and p.name != "generator.json") if out_dir.is_dir() else []
    if foreign:  # a reader would mix them in; never delete files we did not write
        raise FileExistsError(f"{out_dir} holds {', '.join(foreign)}, which this run would not "
                              "replace; remove them or choose another output folder")
    seed = 0 if cfg.seed is None else cfg.seed
    gen = np.random.default_rng(seed)
    items = _items(cfg, gen)
    users = _users(cfg, gen)
    u, i = _sample_pairs(cfg, gen, users, items)
    u, i, t, ts = _order_and_time(cfg, gen, users, items, u, i)
    stars = _ratings(cfg, gen, users, items, u, i, t)
    text_rng = random.Random(seed * 7919 + 1)
    return _write(cfg, out_dir, text_rng, users, items, u, i, ts, stars)


def _items(cfg: SampleConfig, gen: np.random.Generator) -> dict:
    n_dom, k = len(cfg.domains), cfg.n_clusters
    per_dom = [cfg.n_items // n_dom + (d < cfg.n_items % n_dom) for d in range(n_dom)]
    dom = np.repeat(np.arange(n_dom), per_dom)
    # Equal-sized cells (each gets >= 1 item), shuffled inside each domain.
    cell = np.concatenate([gen.permutation(np.arange(n) % (k * N_FACETS)) for n in per_dom])
    pop = gen.lognormal(0.0, cfg.popularity_sigma, cfg.n_items)
    # Popularity share inside its (domain, cell): picks a cell's item, never the cell.
    key = dom * (k * N_FACETS) + cell
    cell_sum = np.bincount(key, weights=pop, minlength=n_dom * k * N_FACETS)
    quality = gen.normal(0.0, 0.5, cfg.n_items)  # per-item rating offset
    # Keywords: two of the item's facet words plus one from another facet of its theme, as
    # global word ids theme * 12 + facet * 4 + j (the layout of sample_vocab facets).
    theme, facet = cell // N_FACETS, cell % N_FACETS
    own = np.argsort(gen.random((cfg.n_items, WORDS)), axis=1)[:, :2]
    other = (facet[:, None] + 1 + gen.integers(0, N_FACETS - 1, (cfg.n_items, 1))) % N_FACETS
    third = other * WORDS + gen.integers(0, WORDS, (cfg.n_items, 1))
    words = theme[:, None] * (N_FACETS * WORDS) + np.hstack([facet[:, None] * WORDS + own, third])
    return {"dom": dom, "cell": cell, "pop": pop, "share": pop / cell_sum[key],
            "quality": quality, "words": words}


def _users(cfg: SampleConfig, gen: np.random.Generator) -> dict:
    k, n = cfg.n_clusters, cfg.n_users
    theta_a = gen.dirichlet(np.full(k, cfg.taste_alpha), n)
    theta_b = (1 - cfg.drift) * theta_a + cfg.drift * gen.dirichlet(np.full(k, cfg.taste_alpha), n)
    psi = gen.dirichlet(np.full(N_FACETS, cfg.facet_alpha), (n, k))  # facet taste per theme
    phi = gen.dirichlet(np.full(len(cfg.domains), cfg.domain_alpha), n)
    # Favourite words inside each theme (mean 1 per word): within a liked cell, items whose
    # keywords the user likes are picked more, a preference only text can reveal.
    omega = gen.dirichlet(np.full(N_FACETS * WORDS, cfg.word_alpha), (n, k)) * (N_FACETS * WORDS)
    # Negative binomial (r=2) above the floor: a long tail of heavy reviewers.
    extra_mean = cfg.reviews_per_user_mean - cfg.min_count
    extra = gen.negative_binomial(2, 2 / (2 + extra_mean), n) if extra_mean > 0 else np.zeros(n)
    cap = max(cfg.min_count, cfg.n_items // 3)
    count = np.minimum(cfg.min_count + extra, cap).astype(np.int64)
    return {"theta_a": theta_a, "theta_b": theta_b, "psi": psi, "phi": phi, "count": count,
            "omega": omega.reshape(n, -1)}


def _cell_taste(theta: np.ndarray, psi: np.ndarray, noise: float) -> np.ndarray:
    """(n, K*3) probability of each (theme, facet) cell, mixed with taste-blind noise."""
    p = (theta[:, :, None] * psi).reshape(len(theta), -1)
    return (1 - noise) * p + noise / p.shape[1]


def _log_weight(cfg, users, items, taste, rows: slice | np.ndarray, cols) -> np.ndarray:
    """log pick weight of items `cols` for users `rows` (up to popularity): cell taste x
    domain taste x liking of the item's keywords."""
    tiny = 1e-300  # Dirichlet draws with small alphas can underflow to 0
    w = np.log(np.maximum(taste[rows][:, items["cell"][cols]], tiny))
    w += np.log(np.maximum(users["phi"][rows][:, items["dom"][cols]], tiny))
    if cfg.word_weight:
        liking = users["omega"][rows][:, items["words"][cols]].mean(axis=-1)
        w += cfg.word_weight * np.log(np.maximum(liking, tiny))
    return w


def _sample_pairs(cfg, gen, users, items) -> tuple[np.ndarray, np.ndarray]:
    """Each user's distinct items, drawn without replacement (Gumbel top-k) by taste."""
    theta = (users["theta_a"] + users["theta_b"]) / 2
    taste = _cell_taste(theta, users["psi"], cfg.noise)
    log_share = np.log(items["share"])
    everything = np.arange(cfg.n_items)
    us, its = [], []
    block = 512  # bounds memory at block x n_items x 3 floats
    for lo in range(0, cfg.n_users, block):
        rows = slice(lo, min(lo + block, cfg.n_users))
        w = _log_weight(cfg, users, items, taste, rows, everything)
        keys = w + log_share + gen.gumbel(size=w.shape)
        order = np.argsort(-keys, axis=1, kind="stable")
        take = everything[None, :] < users["count"][rows, None]
        us.append(np.broadcast_to(np.arange(rows.start, rows.stop)[:, None], order.shape)[take])
        its.append(order[take])
    u, i = np.concatenate(us), np.concatenate(its)
    return _fill_items(cfg, gen, taste, users, items, u, i)


def _fill_items(cfg, gen, taste, users, items, u, i):
    """Give every item >= min_count reviewers, taken from the users most likely to pick it."""
    counts = np.bincount(i, minlength=cfg.n_items)
    add_u, add_i = [], []
    for item in np.flatnonzero(counts < cfg.min_count):
        w = _log_weight(cfg, users, items, taste, slice(None), np.array([item]))[:, 0]
        keys = w + gen.gumbel(size=cfg.n_users)
        keys[u[i == item]] = -np.inf
        need = cfg.min_count - counts[item]
        chosen = np.sort(np.argsort(-keys, kind="stable")[:need])
        add_u.append(chosen)
        add_i.append(np.full(need, item))
    if add_u:
        u, i = np.concatenate([u, *add_u]), np.concatenate([i, *add_i])
    return u, i


def _order_and_time(cfg, gen, users, items, u, i):
    """Order each user's reviews along their taste drift; give them distinct review days.

    An item picked from cell c gets a time t in [0, 1] drawn from the density proportional to
    its pick weight at t, which is linear from a (start taste) to b (end taste): items of
    fading tastes lean early, of rising tastes late, softly, as a slow drift would place them.
    """
    cell = items["cell"][i]
    a = _cell_taste(users["theta_a"], users["psi"], cfg.noise)[u, cell]
    b = _cell_taste(users["theta_b"], users["psi"], cfg.noise)[u, cell]
    q = gen.random(len(u)) * (a + b)
    draw = q / (a + np.sqrt(np.maximum(a * a + (b - a) * q, 0.0)))  # inverse CDF, stable form
    order = np.lexsort((draw, u))
    u, i = u[order], i[order]
    n_u = np.bincount(u, minlength=cfg.n_users)
    first = np.concatenate([[0], np.cumsum(n_u)[:-1]])
    pos = np.arange(len(u)) - first[u]
    t = pos / np.maximum(n_u[u] - 1, 1)  # 0 = first review, 1 = last
    gaps = gen.geometric(1 / cfg.mean_gap_days, len(u)).astype(np.int64)
    gaps[first[n_u > 0]] = 0
    offset = np.cumsum(gaps)
    offset -= offset[first][u]
    span = np.zeros(cfg.n_users, np.int64)
    np.maximum.at(span, u, offset)
    day0 = (date(cfg.start_year, 1, 1) - date(1970, 1, 1)).days
    total = (date(cfg.end_year, 12, 31) - date(cfg.start_year, 1, 1)).days
    # Users whose history would not fit in the window are compressed (ties become possible).
    squeeze = np.where(span > total, total / np.maximum(span, 1), 1.0)
    offset = np.floor(offset * squeeze[u]).astype(np.int64)
    span = np.minimum(span, total)
    start = (gen.random(cfg.n_users) * (total - span + 1)).astype(np.int64)
    ts = (day0 + start[u] + offset) * 86400
    return u, i, t, ts


def _ratings(cfg, gen, users, items, u, i, t) -> np.ndarray:
    """1-5 stars from how well the item matches the user's taste at review time."""
    theta_t = (1 - t)[:, None] * users["theta_a"][u] + t[:, None] * users["theta_b"][u]
    cell_p = (theta_t[:, :, None] * users["psi"][u]).reshape(len(u), -1)
    match = cell_p[np.arange(len(u)), items["cell"][i]] / cell_p.max(axis=1)
    # Concave in `match` so liked items pile up at 5 stars (the J shape of real Amazon data:
    # ~50% 5, ~20% 4, ~15% 3, ~9% 2, ~5% 1 at the defaults).
    latent = 0.6 + 5.2 * match**0.3 + items["quality"][i] + gen.normal(0, 0.7, len(u))
    if cfg.word_weight:  # liked keywords add up to ~half a star, disliked ones take some off
        liking = users["omega"][u[:, None], items["words"][i]].mean(axis=1)
        latent += 0.3 * np.clip(np.log(np.maximum(liking, 1e-300)), -2.0, 1.5)
    return np.clip(np.rint(latent), 1, 5).astype(np.int64)


def _gzip_lines(path: Path, lines: list[str]) -> None:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with atomic_path(path) as tmp:  # mtime=0 and no embedded name: byte-identical reruns
        tmp.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))


def _write(cfg, out, text_rng, users, items, u, i, ts, stars) -> dict:
    theta = (users["theta_a"] + users["theta_b"]) / 2
    fav_theme = _cell_taste(theta, users["psi"], 0.0).argmax(axis=1) // N_FACETS
    span = N_FACETS * WORDS  # a user's three favourite words of their favourite theme
    fav_ids = fav_theme[:, None] * span + np.argsort(
        -users["omega"].reshape(cfg.n_users, -1, span)[np.arange(cfg.n_users), fav_theme],
        axis=1, kind="stable")[:, :3]
    fav_words = [[sample_text.WORD_LIST[w] for w in row] for row in fav_ids]
    ids = sample_text.make_ids(text_rng, cfg, items["dom"])
    metas = sample_text.item_records(text_rng, cfg, items, ids, u, i, ts)
    counts: dict = {"users": int(len(np.unique(u))), "items": cfg.n_items, "reviews": len(u)}
    for d, name in enumerate(cfg.domains):
        sel = np.flatnonzero(items["dom"][i] == d)
        # Real 5-core files are grouped by item, newest review first.
        sel = sel[np.lexsort((u[sel], -ts[sel], ids.asin[i[sel]]))]
        lines = [json.dumps(sample_text.review_record(text_rng, cfg, ids, metas, int(u[k]),
                                                      int(i[k]), int(ts[k]), int(stars[k]),
                                                      int(fav_theme[u[k]]), fav_words[u[k]]))
                 for k in sel]
        lines, n_dup = sample_text.add_duplicates(text_rng, lines, cfg.dup_review_frac)
        _gzip_lines(out / f"{name}_5.json.gz", lines)
        meta_lines, meta_stats = sample_text.meta_lines(text_rng, cfg, metas, np.flatnonzero(
            items["dom"] == d))
        _gzip_lines(out / f"meta_{name}.json.gz", meta_lines)
        counts[f"{name}.reviews"] = len(sel)
        counts[f"{name}.review_lines"] = len(lines)
        counts[f"{name}.duplicate_review_lines"] = n_dup
        counts[f"{name}.users"] = int(len(np.unique(u[sel])))
        counts[f"{name}.items"] = int((items["dom"] == d).sum())
        counts[f"{name}.meta_lines"] = len(meta_lines)
        counts.update({f"{name}.{k}": v for k, v in meta_stats.items()})
    counts["users_in_2plus_domains"] = int(
        (np.bincount(np.unique(u * len(cfg.domains) + items["dom"][i]) // len(cfg.domains),
                     minlength=cfg.n_users) >= 2).sum())
    for s in range(1, 6):
        counts[f"stars_{s}"] = int((stars == s).sum())
    counts["ts_min"], counts["ts_max"] = int(ts.min()), int(ts.max())
    params = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in dataclasses.asdict(cfg).items() if k != "out"}
    params["seed"] = 0 if cfg.seed is None else cfg.seed
    write_json(out / "generator.json", {
        "generator": "recpipe.data.sample", "format": "amazon2018", "params": params,
        "themes": [t.name for t in THEMES[:cfg.n_clusters]], "counts": counts})
    write_text(out / "README.md", sample_text.readme(cfg, params, counts))
    return counts
