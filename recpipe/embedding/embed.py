"""The `embed` stage's work: profiles and item texts -> float32 matrices aligned with our ids.

Matrices written to `out_dir` (row i = uid / iid i, float32 `.npy`, `allow_pickle=False`):

| file | text embedded | source |
|---|---|---|
| `user_profile.npy` | profile `summarization` (RLMRec: summarization only) | `profiles/user_profiles.parquet` |
| `item_profile.npy` | profile `summarization` | `profiles/item_profiles.parquet` |
| `item_text.npy` | `title brand categories[0] description`, HTML stripped (HeLLM 2.2) | `processed/items.parquet` |
| `item_image.npy` | precomputed image features, when given (see images.py) | `embed.image_features` |

plus `index.json` describing each (model, dim, normalised, rows, missing rows).

**Failed profiles.** A profile whose status is not "ok", whose summarization is empty or the
literal "None" (RLMRec's "cannot summarise" answer), or that is absent from the file gets the
mean of the valid rows of its matrix (re-normalised when `normalize` is on, so every row of a
normalised matrix has unit norm). Not zero: a zero row has no direction, so cosine-based
alignment (RLMRec-Con) would divide by ~0; not random: the result must not depend on luck.
Such rows are counted in the metrics and listed in `index.json` (`missing_rows`) so a
consumer can mask them. If *every* profile failed there is nothing to average and the stage
stops.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from recpipe.config import rng
from recpipe.embedding.cache import EmbeddingCache, encode_cached
from recpipe.embedding.images import align_features, load_features
from recpipe.io import write_json, write_npy

MATRICES = ("user_profile", "item_profile", "item_text", "item_image")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass
class EmbedParams:
    # sentence encoder: `minilm` (bundled all-MiniLM-L6-v2, offline, 384-d),
    # a Hugging Face id or a local path
    model: str = "minilm"
    # texts per forward pass
    batch_size: int = field(default=64, metadata=rng(1))
    # L2-normalise every row (cosine geometry, as the RLMRec recipe assumes)
    normalize: bool = True
    # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    device: str = "auto"
    # half precision on CUDA (ignored on CPU)
    fp16: bool = False
    # truncate texts to this many word pieces; 0 = the model's own limit (MiniLM: 256)
    max_seq_length: int = field(default=0, metadata=rng(0))
    # optional precomputed image features keyed by raw item id (.npy + .keys.txt, or a
    # .parquet with columns item, vector); empty = none
    image_features: str = ""

    def validate(self) -> None:
        from recpipe.train.device import check_device

        check_device(self.device, "embed.device")


def strip_html(text: str) -> str:
    """Drop tags, decode entities (`&amp;` -> `&`), collapse whitespace."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def item_text(title: str | None, brand: str | None, categories: list[str] | None,
              description: str | None) -> str:
    """HeLLM's item text: title + brand + first category + description, HTML stripped.

    Empty parts are skipped so no double spaces or dangling separators reach the encoder.
    """
    cat = categories[0] if categories else None
    parts = (strip_html(p) for p in (title, brand, cat, description) if p)
    return " ".join(p for p in parts if p)


def item_texts(processed: Path) -> list[str]:
    """One text per iid (row i = iid i); items without metadata get an empty text."""
    ids = pl.read_parquet(processed / "item_map.parquet", columns=["iid"])
    items = pl.read_parquet(processed / "items.parquet",
                            columns=["iid", "title", "brand", "categories", "description"])
    df = ids.join(items, on="iid", how="left").sort("iid")
    _check_ids(df["iid"], len(ids), processed / "item_map.parquet")
    return [item_text(*r) for r in df.select("title", "brand", "categories", "description").iter_rows()]


def _check_ids(col: pl.Series, n: int, where: Path) -> None:
    if col.len() != n or (n and (col.min() != 0 or col.max() != n - 1 or col.n_unique() != n)):
        raise ValueError(f"{where}: ids are not 0..{n - 1}")


def profile_texts(path: Path, id_col: str, n: int) -> tuple[list[str | None], dict]:
    """Summarizations aligned with ids 0..n-1; None where the profile failed or is absent."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the `profile` stage first (dvc repro profile)")
    df = pl.read_parquet(path, columns=[id_col, "status", "summarization"])
    if df.height and (df[id_col].min() < 0 or df[id_col].max() >= n):
        raise ValueError(f"{path}: {id_col} outside 0..{n - 1}; profiles of another split?")
    if df[id_col].n_unique() != df.height:
        raise ValueError(f"{path}: duplicate {id_col} rows")
    texts: list[str | None] = [None] * n
    failed = 0
    for i, status, summ in df.iter_rows():
        s = (summ or "").strip()
        if status == "ok" and s and s.lower() != "none":
            texts[i] = s
        else:
            failed += 1
    return texts, {"failed": failed, "absent": n - df.height}


def embed_rows(encoder, cache: EmbeddingCache, texts: list[str | None]) -> tuple[np.ndarray, dict, list[int]]:
    """Encode rows with a text; fill the rest with the (re-normalised) mean of those rows."""
    have = [i for i, t in enumerate(texts) if t is not None]
    missing = [i for i, t in enumerate(texts) if t is None]
    if not have:
        raise ValueError("no valid text to embed: every profile failed (see the profile stage's metrics)")
    vecs, counts = encode_cached(encoder, cache, [texts[i] for i in have])
    if not missing:
        return vecs, counts, missing
    mean = vecs.mean(axis=0, dtype=np.float64)
    if encoder.normalize:
        mean /= max(np.linalg.norm(mean), 1e-12)
    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
    out[have] = vecs
    out[missing] = mean.astype(np.float32)
    return out, counts, missing


def embed_all(processed: Path, out_dir: Path, encoder, cache_dir: Path | None,
              profiles: Path | None = None, image_features: str = "") -> dict:
    """Write every matrix and `index.json` to `out_dir`; return flat metrics.

    `profiles=None` skips the profile matrices (library use; the stage always passes them).
    """
    processed, out_dir = Path(processed), Path(out_dir)
    cache = EmbeddingCache(cache_dir, encoder.signature())
    n_users = pl.read_parquet(processed / "user_map.parquet", columns=["uid"]).height
    n_items = pl.read_parquet(processed / "item_map.parquet", columns=["iid"]).height
    jobs: dict[str, tuple[list[str | None], dict, str]] = {}
    if profiles is not None:
        for kind, col, n in (("user", "uid", n_users), ("item", "iid", n_items)):
            path = Path(profiles) / f"{kind}_profiles.parquet"
            texts, counts = profile_texts(path, col, n)
            jobs[f"{kind}_profile"] = (texts, counts, f"{path.name}: summarization")
    texts = item_texts(processed)
    jobs["item_text"] = (texts, {"empty": sum(not t for t in texts)},
                         "items.parquet: title brand categories[0] description, HTML stripped")

    report: dict = {"users": n_users, "items": n_items}
    index: dict = {"model": encoder.name, "signature": encoder.signature(), "matrices": {}}
    mats: dict[str, np.ndarray] = {}
    for name, (texts, extra, source) in jobs.items():
        if all(t is None or not t for t in texts):
            # e.g. the RLMRec release: ids without any text. No matrix at all, rather than a
            # made-up one; a stage that needs it (graph.align=con) then names the missing file
            print(f"embed: no text for {name} ({source}); {name}.npy is not written")
            report[f"{name}/skipped"] = 1
            index["matrices"][name] = {"skipped": "no text to embed", "source": source}
            continue
        mat, counts, missing = embed_rows(encoder, cache, texts)
        mats[name] = mat
        report.update({f"{name}/{k}": v for k, v in {**counts, **extra}.items()})
        index["matrices"][name] = _entry(name, mat, source, missing, encoder.normalize)
    report["dim"] = int(next(iter(mats.values())).shape[1]) if mats else 0
    report["status"] = text_status([n for n in jobs if report.get(f"{n}/skipped")], list(jobs))
    cache.save()   # before the matrices: a crash after this point still keeps the new vectors

    if image_features:
        item_ids = pl.read_parquet(processed / "item_map.parquet").sort("iid")["item"].cast(pl.Utf8).to_list()
        keys, feats = load_features(image_features)
        mat, missing, unused = align_features(item_ids, keys, feats)
        mats["item_image"] = mat
        report.update({"item_image/dim": mat.shape[1], "item_image/missing": len(missing),
                       "item_image/unused_keys": unused})
        index["matrices"]["item_image"] = _entry("item_image", mat, str(image_features), missing, False)

    for name, mat in mats.items():
        write_npy(out_dir / f"{name}.npy", mat)
    for stale in set(MATRICES) - set(mats):   # e.g. image features switched off since last run
        (out_dir / f"{stale}.npy").unlink(missing_ok=True)
    write_json(out_dir / "index.json", index)
    return report


def text_status(skipped: list[str], names: list[str]) -> str:
    """`ok`, `skipped: no text` (no matrix could be written: data with ids only, such as the
    RLMRec release or S3Rec sequences) or `no text: <names>` (some matrices skipped)."""
    if not skipped:
        return "ok"
    if len(skipped) == len(names):
        return "skipped: no text"
    return "no text: " + ", ".join(skipped)


def _entry(name: str, mat: np.ndarray, source: str, missing: list[int], normalized: bool) -> dict:
    return {"file": f"{name}.npy", "id": "uid" if name.startswith("user") else "iid",
            "rows": int(mat.shape[0]), "dim": int(mat.shape[1]), "dtype": "float32",
            "normalized": normalized, "source": source, "fill": "mean of the other rows",
            "missing_rows": [int(i) for i in missing]}
