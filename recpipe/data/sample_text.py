"""Rendering of the sample dataset's latent structure into Amazon 2018 JSON records.

`recpipe.data.sample` decides who reviewed what, when, and with how many stars; this module
turns that into the strings a real `<Cat>_5.json.gz` / `meta_<Cat>.json.gz` line would hold:
ids, titles, categories, descriptions, review text, votes, styles, and the known wrinkles of
the published files (duplicate meta asins, exact duplicate review lines, the 2020 `image`
key). All randomness comes from the one `random.Random` passed in, called in a fixed order,
so the output is reproducible. Dict key order mirrors the real files.
"""

from __future__ import annotations

import copy
import json
import random
import string
from dataclasses import dataclass
from datetime import date

import numpy as np

from recpipe.data import sample_vocab as V

_ALNUM = string.digits + string.ascii_uppercase
_IMG_CHARS = string.ascii_letters + string.digits
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_IMG_HOST = "https://images-na.ssl-images-amazon.com/images/I/"
_EPOCH = date(1970, 1, 1).toordinal()
# Global word ids (theme * 12 + facet * 4 + j) -> word; the latent model speaks in ids.
WORD_LIST = [w for t in V.THEMES for f in t.facets for w in f]


@dataclass
class Ids:
    asin: np.ndarray  # per item (str array, so numpy can sort by it)
    user: list[str]  # reviewerID per user
    name: list[str]  # reviewerName per user


def _unique(make, n: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(make(), None)
    return list(seen)


def _isbn10(r: random.Random) -> str:
    """A valid ISBN-10: real Books asins are ISBNs (check digit may be X)."""
    digits = [r.randrange(10) for _ in range(9)]
    check = (11 - sum((10 - k) * d for k, d in enumerate(digits)) % 11) % 11
    return "".join(map(str, digits)) + ("X" if check == 10 else str(check))


def make_ids(r: random.Random, cfg, item_dom: np.ndarray) -> Ids:
    n_books = int((item_dom == cfg.domains.index("Books")).sum()) if "Books" in cfg.domains else 0
    books = iter(_unique(lambda: _isbn10(r), n_books))
    others = iter(_unique(lambda: "B0" + "".join(r.choices(_ALNUM, k=8)),
                          len(item_dom) - n_books))
    asin = [next(books) if cfg.domains[d] == "Books" else next(others) for d in item_dom]
    users = _unique(lambda: "A" + "".join(r.choices(_ALNUM, k=r.randint(11, 13))), cfg.n_users)
    names = []
    for _ in range(cfg.n_users):
        x = r.random()
        names.append("Amazon Customer" if x < 0.12 else "Kindle Customer" if x < 0.16 else
                     f"{r.choice(V.FIRST_NAMES)} {r.choice(string.ascii_uppercase)}.")
    return Ids(np.array(asin), users, names)


def _theme(cfg, items, k: int):
    cell = int(items["cell"][k])
    return V.THEMES[cell // 3], cell % 3, cfg.domains[int(items["dom"][k])]


def _images(r: random.Random) -> list[str]:
    return ["".join(r.choices(_IMG_CHARS, k=10)) + "L" for _ in range(r.randint(1, 3))]


def _fmt_date(day: int) -> date:
    return date.fromordinal(_EPOCH + day)


def item_records(r: random.Random, cfg, items, ids: Ids, u, i, ts) -> list[dict]:
    """One meta record per item, plus `_info` (words, noun, style) used by its reviews."""
    n = cfg.n_items
    first_day = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_day, i, ts // 86400)
    groups: dict[tuple[int, int], list[int]] = {}
    for k in range(n):
        groups.setdefault((int(items["dom"][k]), int(items["cell"][k]) // 3), []).append(k)
    # Sales rank follows popularity inside each domain (1 = best seller).
    rank_pos = np.empty(n, np.int64)
    for d in range(len(cfg.domains)):
        sel = np.flatnonzero(items["dom"] == d)
        rank_pos[sel[np.argsort(-items["pop"][sel], kind="stable")]] = np.arange(1, len(sel) + 1)
    out = []
    for k in range(n):
        theme, facet, dname = _theme(cfg, items, k)
        dom, dt = V.DOMAINS[dname], theme.domains[dname]
        words = [WORD_LIST[w] for w in items["words"][k]]
        noun = r.choice(dt.nouns)
        brand = r.choice(theme.brands) + r.choice(dom.brand_suffixes)
        leaf = dt.leaves[facet]
        platform, color = r.choice(V.PLATFORMS), r.choice(V.COLORS)
        title, category, desc, feature = _listing(r, dname, dt, leaf, words, noun, brand,
                                                  platform, color)
        asin = str(ids.asin[k])
        same = [ids.asin[j] for j in groups[(int(items["dom"][k]), int(items["cell"][k]) // 3)]
                if j != k]
        also_buy = [str(a) for a in r.sample(same, min(len(same), r.randint(0, 5)))]
        also_view = [str(a) for a in r.sample(same, min(len(same), r.randint(0, 8)))]
        if also_view and r.random() < 0.3:  # real lists point at items outside the file too
            also_view.append("B0" + "".join(r.choices(_ALNUM, k=8)))
        rk = int(rank_pos[k]) * r.randint(800, 2500) + r.randint(0, 999)
        if dname == "Books":
            rank: str | list = f"{rk:,} in Books ("
        else:
            rank = [f">#{rk:,} in {dom.root} (See Top 100 in {dom.root})",
                    f">#{max(1, rk // 40):,} in {dom.root} > {leaf}"]
        details = ({"Publisher:": brand, "Language:": "English", "ISBN-10:": asin}
                   if dname == "Books" else {"ASIN:": asin})
        released = _fmt_date(int(first_day[k]) - r.randint(0, 600))
        date_str = (f"{_MONTHS[released.month - 1]} {released.day}, {released.year}"
                    if r.random() < 0.7 else "")
        price = (f"${np.exp(np.log(dom.price_median) + r.gauss(0, 0.5)):.2f}"
                 if r.random() < 0.92 else "")
        imgs = _images(r)
        out.append({
            "category": category, "tech1": "", "description": desc, "fit": "", "title": title,
            "also_buy": also_buy, "tech2": "", "brand": brand, "feature": feature, "rank": rank,
            "also_view": also_view, "details": details, "main_cat": dom.main_cat,
            "similar_item": "", "date": date_str, "price": price, "asin": asin,
            "imageURL": [f"{_IMG_HOST}{g}._SX38_SY50_CR,0,0,38,50_.jpg" for g in imgs],
            "imageURLHighRes": [f"{_IMG_HOST}{g}.jpg" for g in imgs],
            "_info": {"words": words, "theme": int(items["cell"][k]) // 3, "noun": noun,
                      "platform": platform,
                      "color": color, "domain": dname},
        })
    return out


def _cap(w: str) -> str:
    return " ".join(p[:1].upper() + p[1:] for p in w.split(" "))


def _listing(r, dname, dt, leaf, words, noun, brand, platform, color):
    """Title, category path, description paragraphs and feature bullets for one item."""
    w1, w2, w3 = words
    facet_words = words[:2]
    if dname == "Books":
        title = r.choice([f"The {_cap(w1)} {_cap(w2)}", f"{_cap(w1)} of the {_cap(w2)}",
                          f"The Last {_cap(w1)}"])
        if r.random() < 0.6:
            title += f": A {_cap(r.choice(V.BOOK_ADJ))} {_cap(noun)}"
        if r.random() < 0.3:
            title += f" (The {_cap(w3)} Chronicles Book {r.randint(1, 6)})"
        category = ["Books", *dt.path, leaf]
        desc = [f"A {r.choice(V.BOOK_ADJ)} {noun} about {w1}, {w2} and {w3}. "
                f"{brand} brings readers of {leaf.lower()} a story they will not forget.",
                f"Perfect for fans of {r.choice(facet_words)} and {w1}."][: r.randint(1, 2)]
        feature: list[str] = []
    elif dname == "Video_Games":
        title = f"{_cap(w1)} {_cap(w2)} {r.choice(V.GAME_SUFFIXES)} - {platform}"
        category = ["Video Games", platform, "Games", leaf]
        desc = [f"Step into a world of {w1} and {w2} in this {leaf.lower()} {noun} for "
                f"{platform}. Master the {w3} across dozens of levels.",
                f"Features stunning graphics, a memorable soundtrack and hours of "
                f"{r.choice(facet_words)} fun."][: r.randint(1, 2)]
        feature = [f"{_cap(w1)} themed campaign", f"Play with friends: {w2} multiplayer modes",
                   "Rated for teens and up"][: r.randint(2, 3)]
    else:
        title = f"{brand} {_cap(w1)} {_cap(noun)}, {color}"
        category = ["Home & Kitchen", *dt.path, leaf]
        desc = [f"This {color.lower()} {noun} from {brand} adds a touch of {w1} to any room. "
                f"Inspired by {w2} and {w3}, it makes a great gift.",
                f"A must for {r.choice(facet_words)} lovers."][: r.randint(1, 2)]
        feature = [f"{_cap(w1)} inspired design", f"Great gift for {w2} lovers",
                   f"Dimensions: {r.randint(4, 16)} x {r.randint(3, 12)} inches"][: r.randint(2, 3)]
    return title, category, desc, feature


def review_record(r: random.Random, cfg, ids: Ids, metas, user: int, item: int, ts: int,
                  stars: int, fav_theme: int, fav_words: list[str]) -> dict:
    """One review line; `fav_*` is the reviewer's favourite theme and words in it."""
    info = metas[item]["_info"]
    dom = V.DOMAINS[info["domain"]]
    u1, u2 = r.sample(fav_words, 2)
    w1, w2 = r.sample(info["words"], 2)
    slots = {"noun": info["noun"], "w1": w1, "w2": w2, "g": r.choice(dom.generic),
             "pa": r.choice(V.POS_ADJ), "na": r.choice(V.NEG_ADJ), "u1": u1, "u2": u2,
             "verb": dom.verb}
    if stars >= 4:
        banks = (V.POS_OPEN, V.POS_BODY, V.POS_TASTE)
    elif stars == 3:
        banks = (V.MID_OPEN, V.MID_BODY, V.NEG_TASTE)
    else:
        banks = (V.NEG_OPEN, V.NEG_BODY, V.NEG_TASTE)
    parts = [r.choice(banks[0])] + r.sample(banks[1], min(len(banks[1]), r.randint(1, 2)))
    # "I love X" praises an item of the favourite theme; "I was hoping for X" faults another.
    if r.random() < 0.4 and (info["theme"] == fav_theme) == (stars >= 4):
        parts.append(r.choice(banks[2]))
    text = " ".join(p.format(**slots) for p in parts)
    summary = r.choice(V.SUMMARIES[stars]).format(**slots)
    day = _fmt_date(ts // 86400)
    rec: dict = {"overall": float(stars)}
    if r.random() < cfg.vote_frac:
        v = r.randint(1000, 3000) if r.random() < 0.03 else 2 + int(r.expovariate(0.2))
        rec["vote"] = f"{v:,}"
    rec["verified"] = r.random() < 0.8
    rec["reviewTime"] = f"{day.month:02d} {day.day}, {day.year}"
    rec["reviewerID"] = ids.user[user]
    rec["asin"] = str(ids.asin[item])
    if r.random() < 0.5:
        value = {"Video_Games": " " + info["platform"], "Home_and_Kitchen": " " + info["color"]}
        rec["style"] = {dom.style_key: value.get(info["domain"], r.choice(dom.style_values))}
    rec["reviewerName"] = ids.name[user]
    rec["reviewText"] = text
    rec["summary"] = summary
    rec["unixReviewTime"] = ts
    if r.random() < 0.003:
        rec["image"] = [f"{_IMG_HOST}{_images(r)[0]}._SY88.jpg"]
    return rec


def add_duplicates(r: random.Random, lines: list[str], frac: float) -> tuple[list[str], int]:
    """Copy round(frac * n) lines to random positions (the published files do this)."""
    n_dup = int(round(frac * len(lines)))
    picked = r.sample(range(len(lines)), n_dup)
    copies = sorted((r.randint(0, len(lines)), lines[j]) for j in picked)
    out, c = [], 0
    for pos, line in enumerate(lines):
        while c < len(copies) and copies[c][0] == pos:
            out.append(copies[c][1])
            c += 1
        out.append(line)
    out.extend(line for _, line in copies[c:])
    return out, n_dup


def meta_lines(r: random.Random, cfg, metas: list[dict], item_idx) -> tuple[list[str], dict]:
    """JSON lines of one domain's meta file, with repeated asins and 2020 `image` lines."""
    records = []
    n_img = 0
    for k in item_idx:
        rec = {key: v for key, v in metas[k].items() if key != "_info"}
        if r.random() < cfg.image_variant_frac:  # the 2020 release: `image`, no imageURL*
            img = rec.pop("imageURLHighRes")
            del rec["imageURL"]
            rec["image"] = img
            n_img += 1
        records.append(rec)
    n_dup = int(round(cfg.dup_meta_frac * len(records)))
    lines = [json.dumps(rec) for rec in records]
    for j in sorted(r.sample(range(len(records)), n_dup), reverse=True):
        dup = copy.deepcopy(records[j])  # same listing crawled twice: only the rank differs
        dup["rank"] = (f"{r.randint(10_000, 3_000_000):,} in Books (" if isinstance(
            dup["rank"], str) else dup["rank"][:1])
        lines.insert(r.randint(j + 1, len(lines)), json.dumps(dup))
    return lines, {"duplicate_meta_lines": n_dup, "image_variant_lines": n_img}


def readme(cfg, params: dict, counts: dict) -> str:
    rows = "\n".join(f"| `{k}` | {json.dumps(v)} |" for k, v in params.items())
    cnt = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items())
    files = "\n".join(f"- `{d}_5.json.gz`, `meta_{d}.json.gz`" for d in cfg.domains)
    return f"""# Synthetic sample dataset (not real data)

Generated by `recpipe.data.sample` (recpipe's `sample` stage) with seed {params['seed']}.
Nothing here comes from real users or products: ids, names, titles and reviews are made up
from word lists, so the files may be shared freely. They are written in the raw **Amazon 2018
5-core** format (Ni et al., 2019) so the pipeline reads them with its real `amazon2018` reader.

Files:
{files}
- `generator.json`: the parameters and the counts below, machine-readable.

Latent structure: {cfg.n_clusters} taste themes shared by all domains, 3 facets each; users
prefer a few (theme, facet) cells, popularity is long-tailed inside each cell, ratings and
review wording follow how well an item matches the reviewer's taste, tastes drift over time.
Every user and every item has at least {cfg.min_count} distinct reviews over all domains.
Deliberate format wrinkles (as in the published files): exact duplicate review lines,
repeated meta asins (only `rank` differs), some meta lines with the 2020 `image` key instead
of `imageURL`/`imageURLHighRes`, `vote` only on some reviews, `rank` a string in Books and a
list elsewhere, empty `price`/`date` on some items.

## Parameters

| key | value |
|---|---|
{rows}

## Counts

| what | count |
|---|---|
{cnt}
"""
