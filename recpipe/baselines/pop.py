"""MostPopular: rank every item by how often it was interacted with in training.

The non-personalised floor every recommender must beat (e.g. Cremonesi, Koren, Turrin,
"Performance of recommender algorithms on top-N recommendation tasks", RecSys 2010).
Reference code: RecBole `recbole/model/general_recommender/pop.py`
(https://github.com/RUCAIBox/RecBole).

Expressed as a rank-1 embedding model (user vector = 1, item vector = popularity), so the
evaluator's torch and faiss back ends both serve it and ties go to the smaller item id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class PopParams:
    """MostPopular has no knobs; the section exists so every model is configured alike."""


class MostPopular:
    Params = PopParams

    def __init__(self, params: PopParams | None = None, *, seed: int = 0, device: str = "cpu",
                 log_dir=None):
        self.params = params or PopParams()
        self.device = device
        self.popularity: np.ndarray | None = None  # (n_items,) training counts
        self.selected_epoch = None  # not iterative
        self.curve: list[dict] = []

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None, data=None,
            cfg=None) -> MostPopular:
        # column sums of the binary matrix = number of training users per item
        self.popularity = np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel()
        self.n_users = train.shape[0]
        return self

    def scorer(self, part: str = "test"):
        from recpipe.eval.scorers import EmbeddingScorer

        if self.popularity is None:
            raise RuntimeError("MostPopular.scorer() called before fit()")
        users = np.ones((self.n_users, 1), dtype=np.float32)  # (n_users, 1)
        return EmbeddingScorer(users, self.popularity[:, None], device=self.device)
