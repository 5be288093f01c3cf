"""Text-hash cache of embeddings, so a rerun only encodes texts it has never seen.

One Parquet file per encoder signature (`<cache_dir>/<sha256(signature)[:16]>.parquet`),
columns `hash` (str: sha256 of signature + text) and `vector` (array[f32, dim]). Keying by a
hash of the text (not by user/item id) means a changed profile or item text is re-encoded,
an unchanged one never is, and identical texts (two items sharing a description) are encoded
once. The file keeps every vector it has seen: switching datasets back and forth with
`dvc exp run` stays cheap. It is rewritten (atomically) only when a run adds vectors, so a
cache-hit rerun leaves it byte-identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from recpipe.io import write_parquet, write_text

_README = ("Text-hash cache of the `embed` stage (recpipe/embedding/cache.py): one Parquet file\n"
           "per encoder signature, columns hash (sha256 of signature + text) and vector. Safe\n"
           "to delete: texts are then re-encoded.\n")


def text_hash(signature: str, text: str) -> str:
    return hashlib.sha256(f"{signature}\n{text}".encode()).hexdigest()


class EmbeddingCache:
    """Hash -> float32 vector store backed by one Parquet file."""

    def __init__(self, cache_dir: str | Path | None, signature: str):
        self.signature = signature
        name = hashlib.sha256(signature.encode()).hexdigest()[:16]
        self.path = Path(cache_dir) / f"{name}.parquet" if cache_dir else None
        self._index: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []   # stored blocks of rows, concatenated lazily
        self._rows = 0
        self._new = 0
        if self.path is not None and self.path.exists():
            df = pl.read_parquet(self.path)
            mat = np.ascontiguousarray(df["vector"].to_numpy(), dtype=np.float32)
            self._index = {h: i for i, h in enumerate(df["hash"].to_list())}
            self._blocks, self._rows = [mat], mat.shape[0]

    def __len__(self) -> int:
        return self._rows

    def _matrix(self) -> np.ndarray:
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0]

    def lookup(self, hashes: Sequence[str]) -> np.ndarray:
        """Rows for `hashes` (all must be present), float32 (len, dim)."""
        return self._matrix()[[self._index[h] for h in hashes]]

    def __contains__(self, h: str) -> bool:
        return h in self._index

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        if len(hashes) != vectors.shape[0]:
            raise ValueError(f"{len(hashes)} hashes for {vectors.shape[0]} vectors")
        if self._blocks and vectors.shape[1] != self._blocks[0].shape[1]:
            raise ValueError(f"cache {self.path} holds {self._blocks[0].shape[1]}-d vectors, "
                             f"got {vectors.shape[1]}-d: same signature, different model?")
        for h in hashes:
            self._index[h] = self._rows
            self._rows += 1
        self._blocks.append(np.asarray(vectors, dtype=np.float32))
        self._new += len(hashes)

    def save(self) -> bool:
        """Write the file if this run added vectors; returns whether it wrote.

        The folder itself always exists afterwards, with a README naming what it holds: it is
        a declared DVC output, which must be in place (and not empty) even when the data has
        no text to encode (the RLMRec release, S3Rec sequences).
        """
        if self.path is None:
            return False
        readme = self.path.parent / "README.txt"
        if not readme.exists():
            write_text(readme, _README)
        if self._new == 0:
            return False
        mat = self._matrix()
        hashes = [""] * self._rows
        for h, i in self._index.items():
            hashes[i] = h
        write_parquet(self.path, pl.DataFrame({"hash": hashes, "vector": mat}))
        self._new = 0
        return True


def encode_cached(encoder, cache: EmbeddingCache, texts: Sequence[str]) -> tuple[np.ndarray, dict]:
    """Rows for `texts` in order, encoding only distinct texts missing from `cache`.

    Returns the float32 matrix and counts over *distinct* texts: `encoded` (sent to the model)
    and `cached` (served from the cache).
    """
    hashes = [text_hash(cache.signature, t) for t in texts]
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        if h not in cache and h not in todo:
            todo[h] = t
    distinct = len(set(hashes))
    if todo:
        cache.add(list(todo), encoder.encode(list(todo.values())))
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32), {"encoded": 0, "cached": 0}
    mat = np.ascontiguousarray(cache.lookup(hashes), dtype=np.float32)
    return mat, {"encoded": len(todo), "cached": distinct - len(todo)}
