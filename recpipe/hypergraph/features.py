"""MMHCL's item modalities (hellm.md 2.2, 2.5, 3.1): one (n_items, f) matrix per name in
`mmhcl.modalities`, row = iid. Chosen by that list, never by the dataset's name.

| name | matrix | source |
|---|---|---|
| text | the embed stage's item text vectors | `<embeddings>/item_text.npy` |
| attributes | multi-hot float32 (n_items, n_attrs) | `<processed>/items.parquet`, extra.attributes |
| image | precomputed image features | `mmhcl.image_path`, else `<embeddings>/item_image.npy` |
| auto | every one of the above the data has, in that order | (the default) |

`auto` resolves by what exists, not by the dataset's name: text when the embed stage wrote
`item_text.npy`, attributes when some item carries them, image when its file exists. So the
synthetic default runs on text, S3Rec files on attributes, and the same `dvc exp run` line
works on both; the resolved list is what the metrics and report record. Data with none of
them (the RLMRec release) resolves to [], and the stage trains without the item hypergraph
(lambda_i = 0, the reference's way of switching a branch off), labelled `mmhcl[none]`.

`text` is `item_text.npy`, not `item_profile.npy`: it embeds each item's own catalogue text
(title, brand, categories[0], description; recpipe/embedding/embed.py), which is HeLLM's text
modality (BERT CLS of the same fields, hellm.md 2.2); `item_profile.npy` embeds an LLM profile
written from the items' training reviews, RLMRec's semantic table, not a modality of MMHCL.

`attributes` is the project adaptation for the s3rec_seq files, which carry attribute ids but no
text or images (hellm.md 2.5): column c is the c-th smallest attribute id seen, an item without
attributes is a zero row (its kNN neighbours are then an arbitrary tie-break, build.py). It is
dense when that takes at most DENSE_MAX_BYTES (Beauty: 12,101 x 637 floats = 31 MB), else a
float32 CSR that build.knn searches sparse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recpipe.config import ParamError

DENSE_MAX_BYTES = 1 << 30  # a multi-hot matrix larger than this as float32 stays sparse


def _npy(path: Path, n_items: int, what: str, key: str, how: str) -> np.ndarray:
    """A 2-D float32 (n_items, f) matrix from `path`; ParamError naming `key` otherwise."""
    if not path.is_file():
        raise ParamError(f"{key}: {what} needs {path}, which does not exist; {how}")
    x = np.load(path, allow_pickle=False)
    if x.ndim != 2 or x.shape[0] != n_items:
        raise ParamError(f"{key}: {path} has shape {x.shape}, but the split has n_items = "
                         f"{n_items}: one row per iid of item_map.parquet is needed; {how}")
    return np.ascontiguousarray(x, dtype=np.float32)


def text(embeddings: Path, n_items: int) -> np.ndarray:
    """(n_items, f) item text vectors from the embed stage."""
    return _npy(Path(embeddings) / "item_text.npy", n_items, "modality text", "mmhcl.modalities",
                "run the embed stage (dvc repro embed; it writes item_text.npy only when the "
                "items have text) or choose another modality, e.g. mmhcl.modalities: [attributes]")


def image(path: str, embeddings: Path, n_items: int) -> np.ndarray:
    """(n_items, f) image features from `mmhcl.image_path`, else from the embed stage."""
    if path:
        return _npy(Path(path), n_items, "modality image", "mmhcl.image_path",
                    "give a .npy with one row per iid")
    return _npy(Path(embeddings) / "item_image.npy", n_items, "modality image (mmhcl.image_path "
                "is empty)", "mmhcl.image_path", "set mmhcl.image_path to a .npy (n_items, dim) "
                "or embed.image_features, or choose another modality")


def attributes(processed: Path, n_items: int) -> np.ndarray | sp.csr_matrix:
    """(n_items, n_attrs) float32 multi-hot of items.parquet's extra {"attributes": [ids]}."""
    f = pl.read_parquet(Path(processed) / "items.parquet", columns=["iid", "extra"])
    rows, attrs = [], []
    for iid, extra in f.iter_rows():
        if not extra or '"attributes"' not in extra:  # skip parsing other sources' metadata
            continue
        got = json.loads(extra).get("attributes") or []
        rows.extend([iid] * len(got))
        attrs.extend(got)
    if not attrs:
        raise ParamError(f"mmhcl.modalities: modality attributes, but no item of "
                         f"{Path(processed) / 'items.parquet'} has extra.attributes (only S3Rec "
                         f"sequence data with <Name>_item2attributes.json has them); choose "
                         f"text or image")
    ids, col = np.unique(np.asarray(attrs, dtype=np.int64), return_inverse=True)  # (n_attrs,)
    m = sp.csr_matrix((np.ones(len(col), dtype=np.float32), (np.asarray(rows), col)),
                      shape=(n_items, len(ids)))
    m.sum_duplicates()
    m.data[:] = 1.0  # an attribute listed twice is still one
    if n_items * len(ids) * 4 <= DENSE_MAX_BYTES:
        return m.toarray()
    return m


def has_attributes(processed: Path) -> bool:
    f = pl.read_parquet(Path(processed) / "items.parquet", columns=["extra"])
    return bool(f["extra"].str.contains('"attributes"', literal=True).any())


def available(processed: Path, embeddings: Path, image_path: str) -> list[str]:
    """The modalities this data has (`auto`), in the order text, attributes, image."""
    have = {"text": (Path(embeddings) / "item_text.npy").is_file(),
            "attributes": has_attributes(processed),
            "image": Path(image_path).is_file() if image_path
            else (Path(embeddings) / "item_image.npy").is_file()}
    return [n for n, ok in have.items() if ok]


def load_modalities(names: list[str], processed: Path, embeddings: Path, image_path: str,
                    n_items: int) -> tuple[list, list[str]]:
    """([matrix per name], names): each (n_items, f) float32, dense or CSR (attributes only).
    `auto` in `names` stands for `available(...)`, which may be empty: ([], [])."""
    if "auto" in names:
        if len(names) > 1:
            raise ParamError(f"mmhcl.modalities: {names}: auto already means every modality the "
                             f"data has; give [auto] alone or list the modalities")
        names = available(processed, embeddings, image_path)
        if not names:  # ids-only data: the caller trains without the item hypergraph
            return [], []
    load = {"text": lambda: text(embeddings, n_items),
            "attributes": lambda: attributes(processed, n_items),
            "image": lambda: image(image_path, embeddings, n_items)}
    if not names:
        raise ParamError("mmhcl.modalities: empty; choose one or more of text, attributes, image")
    bad = [n for n in names if n not in load]
    if bad:
        raise ParamError(f"mmhcl.modalities: {bad} not allowed; choose from {', '.join(load)}")
    return [load[n]() for n in names], list(names)
