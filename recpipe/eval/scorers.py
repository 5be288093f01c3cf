"""Scorers: what a method hands the evaluator.

A scorer maps a batch of user ids to a (B, n_items) float32 score block. Methods with user
and item embeddings use `EmbeddingScorer` (dot product, which the faiss backend can also
serve); anything else (an LLM head, a sequential model) wraps its own function in
`FunctionScorer`. bf16 model outputs are cast to float32 before ranking.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class EmbeddingScorer:
    def __init__(self, user_emb, item_emb, device: str = "cpu"):
        import torch

        self.user_np = np.ascontiguousarray(np.asarray(user_emb, dtype=np.float32))
        self.item_np = np.ascontiguousarray(np.asarray(item_emb, dtype=np.float32))
        if self.user_np.shape[1] != self.item_np.shape[1]:
            raise ValueError(
                f"user and item embeddings differ in width: {self.user_np.shape} vs {self.item_np.shape}"
            )
        self.device = torch.device(device)
        self.users = torch.from_numpy(self.user_np).to(self.device)
        self.items_t = torch.from_numpy(self.item_np).to(self.device).T.contiguous()  # (d, n)

    @property
    def n_items(self) -> int:
        return self.item_np.shape[0]

    def device_scores(self, users: np.ndarray):
        """(B, n_items) float32 scores on the scorer's device: the evaluator masks and ranks
        them there, so on a GPU only the (B, K) top-K ids come back to the host."""
        import torch

        u = self.users[torch.from_numpy(np.asarray(users, dtype=np.int64)).to(self.device)]
        return (u @ self.items_t).float()

    def __call__(self, users: np.ndarray):
        return self.device_scores(users).cpu()


class FunctionScorer:
    """Wrap `fn(users: np.ndarray) -> (B, n_items) tensor or array`."""

    def __init__(self, fn: Callable, n_items: int):
        self.fn = fn
        self.n_items = n_items

    def __call__(self, users: np.ndarray):
        import torch

        out = self.fn(np.asarray(users, dtype=np.int64))
        out = torch.as_tensor(out).float().cpu()
        if out.shape != (len(users), self.n_items):
            raise ValueError(f"scorer returned shape {tuple(out.shape)}, expected {(len(users), self.n_items)}")
        return out.clone()  # ranking masks in place; never write into a model's tensor
