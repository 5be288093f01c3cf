"""Optional precomputed image features, aligned to our item ids.

Image features (HeLLM uses CLIP ViT-B/32 `get_image_features` of each item's image) are
computed outside the pipeline, because images must be downloaded. `embed.image_features`
names the file, keyed by *raw* item id (the `item` column of `item_map.parquet`, e.g. the
Amazon asin), in one of two layouts:

- `feats.npy` (float matrix, row r = item keys[r]) + `feats.keys.txt` (one raw id per line);
- `feats.parquet` with columns `item` (str) and `vector` (list or array of floats).

An item without a feature row gets the **mean** feature vector (HeLLM's notebook does this
for missing/invalid image URLs) and is counted; keys that are not our items are ignored and
counted. Duplicate keys are an error: which row is right cannot be guessed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


def keys_path(npy: Path) -> Path:
    return npy.with_name(npy.name[: -len(".npy")] + ".keys.txt")


def load_features(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(raw item ids, float32 matrix) from either supported layout."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"embed.image_features: {path} does not exist")
    if path.suffix == ".npy":
        kp = keys_path(path)
        if not kp.exists():
            raise FileNotFoundError(f"embed.image_features: {path} needs its keys file {kp} "
                                    "(one raw item id per line, in row order)")
        mat = np.load(path, allow_pickle=False)
        keys = kp.read_text().splitlines()
    elif path.suffix == ".parquet":
        df = pl.read_parquet(path)
        missing = {"item", "vector"} - set(df.columns)
        if missing:
            raise ValueError(f"embed.image_features: {path} lacks column(s) {sorted(missing)}")
        keys = df["item"].cast(pl.Utf8).to_list()
        vec = df["vector"]
        if isinstance(vec.dtype, pl.List):  # ragged rows fail the cast with polars' message
            width = len(vec[0]) if len(vec) else 0
            vec = vec.cast(pl.Array(pl.Float32, width))
        mat = vec.to_numpy()
    else:
        raise ValueError(f"embed.image_features: {path} must be a .npy (+ .keys.txt) or .parquet")
    if mat.ndim != 2 or mat.shape[0] != len(keys):
        raise ValueError(f"embed.image_features: {path} has shape {mat.shape} for {len(keys)} keys")
    if len(set(keys)) != len(keys):
        dup = pl.Series(keys).filter(pl.Series(keys).is_duplicated()).unique().head(3).to_list()
        raise ValueError(f"embed.image_features: duplicate item keys in {path}, e.g. {dup}")
    return keys, np.asarray(mat, dtype=np.float32)


def align_features(items: list[str], keys: list[str], mat: np.ndarray) -> tuple[np.ndarray, list[int], int]:
    """Matrix with row i = feature of raw item `items[i]`.

    Returns (matrix, rows filled with the mean, number of unused keys).
    """
    pos = {k: r for r, k in enumerate(keys)}
    rows = [pos.get(it, -1) for it in items]
    found = [r for r in rows if r >= 0]
    if not found:
        raise ValueError("embed.image_features: none of the dataset's items has a feature row; "
                         "are the keys raw item ids (item_map.parquet `item`)?")
    mean = mat[found].mean(axis=0, dtype=np.float64).astype(np.float32)
    idx = np.asarray(rows, dtype=np.int64)
    out = mat[np.maximum(idx, 0)]            # fancy indexing copies, so the fill is safe
    miss = np.flatnonzero(idx < 0)
    out[miss] = mean
    return np.ascontiguousarray(out, dtype=np.float32), miss.tolist(), len(keys) - len(found)
