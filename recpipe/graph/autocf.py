"""AutoCF: Xia et al., "Automated Self-Supervised Learning for Recommendation", WWW 2023.
Reference code: https://github.com/HKUDS/AutoCF; the RLMRec variant this file follows:
https://github.com/HKUDS/RLMRec (encoder/models/general_cf/autocf.py + AutoCFTrainer).

A masked graph autoencoder (rlmrec.md section 6, AutoCF row). Every `fix_steps` training
batches the model scores each node by how well it agrees with its 2-hop neighbourhood, picks
`seed_num` seeds by Gumbel top-k, and removes the edges around them (autocf_mask.py). The
encoder propagates over the remaining edges (`layers` plain Â products); one graph-transformer
layer then propagates over a decoder graph that adds random pairs among the masked nodes and
self-loops. Final = the sum of every layer's output, layer 0 included. Evaluation uses the full
Â for both. Loss (no negatives):

    -mean_b e_u·e_i+ + L2(all) + ssl_reg·[LSE(U_b; U) + LSE(I_b; I)] + LSE(u_b; I)
    (+ -mean(noisy log seed scores) on the batches that redraw the masks: the infomax term)

with LSE(X; Y) = mean_{x∈X} log Σ_{y∈Y} exp(x·y) on unnormalised embeddings; U_b / I_b are the
unique batch users / positives, u_b all batch users.

Resume: the step counter, the last seeds and a seed for the draw's other random choices are
buffers, so a restored model rebuilds the same masked graph without touching any RNG.

Redraws follow the reference's trainer, which draws at batch index i % fix_steps == 0 with i
restarting every epoch: the trainer calls `on_epoch_start`, which resets the step counter, so
every epoch's first batch draws (Amazon's 30 steps an epoch: steps 0, 10, 20).

Deviations from the reference: a Gumbel uniform of exactly 0 is clamped (the reference's noise
would be -inf and its loss inf); LSE is a stable logsumexp. The reference decodes the decoder's
edge codes in float32, which moves some edges a row up; `edge_decode: float32` (graph.mode
parity) reproduces that, `exact` (clean) decodes with integers (autocf_mask.decode_edges).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from recpipe.config import ParamError, choice, rng
from recpipe.graph.adjacency import Graph
from recpipe.graph.autocf_mask import gumbel_log, local_scores, masked_graphs
from recpipe.graph.base import Backbone
from recpipe.graph.losses import l2_all, row_logsumexp


@dataclass
class AutoCFConfig:
    # embedding size d
    embedding_size: int = field(default=32, metadata=rng(1))
    # encoder (plain propagation) layers: the reference's gcn_layer (2 / 3 / 2)
    layers: int = field(default=2, metadata=rng(0))
    # graph-transformer decoder layers and their heads (must divide embedding_size)
    gt_layers: int = field(default=1, metadata=rng(0))
    heads: int = field(default=4, metadata=rng(1))
    # L2 weight over every parameter, every batch (RLMRec: 1e-6 / 1e-7 / 1e-6)
    reg_weight: float = field(default=1e-6, metadata=rng(0.0))
    # weight of the user-user and item-item uniformity terms (RLMRec: 5 / 2 / 0.5)
    ssl_reg: float = field(default=1.0, metadata=rng(0.0))
    # share of N added to the masked node set as uniform draws (with replacement)
    keep_rate: float = field(default=0.2, metadata=rng(0.0, 1.0))
    # seeds per draw (capped at N on small graphs) and rounds of edge removal around them
    seed_num: int = field(default=100, metadata=rng(1))
    mask_depth: int = field(default=2, metadata=rng(1))
    # training batches between two draws of the masked graphs
    fix_steps: int = field(default=10, metadata=rng(1))
    # decoder edge codes -> (row, col): exact (integers) | float32 (the reference's rounding,
    # which moves ~11% of the edges a row up at Amazon's size; parity mode: decode_edges)
    edge_decode: str = field(default="exact", metadata=choice("exact", "float32"))

    def validate(self) -> None:
        if self.embedding_size % self.heads:
            raise ParamError(f"graph.heads: {self.heads} must divide "
                             f"embedding_size {self.embedding_size}")


class GTLayer(nn.Module):
    """One multi-head graph-attention layer over an edge list (no nonlinearity, no residual)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        # (d, d) each, xavier as the reference
        self.q, self.k, self.v = (nn.Parameter(nn.init.xavier_uniform_(torch.empty(d, d)))
                                  for _ in range(3))

    def forward(self, x: torch.Tensor, g, counts: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, d) over the edges h -> t of the Graph `g` (its values unused): per head, row h
        gets Σ_t softmax_t(q_h·k_t) v_t, the softmax over h's edges. `counts` (nnz,) = how often
        each edge occurs (None: once), for a decoder edge list with repeats, where the reference
        attends to each copy.

        Every per-edge quantity is a sampled product (`edge_dot`) or an edge-weighted CSR
        product (`weighted_mm`), so no (E, d) gathered copy of the node table is made.
        """
        n, d = x.shape
        s = d // self.heads
        q, k, v = x @ self.q, x @ self.k, x @ self.v  # project nodes once: (N, d) each
        ones = torch.ones(n, 1, device=x.device, dtype=x.dtype)
        out = []
        for h in range(self.heads):
            sl = slice(h * s, (h + 1) * s)
            att = g.edge_dot(q[:, sl].contiguous(), k[:, sl].contiguous()).clamp(-10.0, 10.0).exp()  # (E,)
            if counts is not None:
                att = att * counts
            norm = g.weighted_mm(att, ones).squeeze(1)  # Σ over each row's edges: (N,)
            att = att / (norm[g.rows] + 1e-8)
            out.append(g.weighted_mm(att, v[:, sl].contiguous()))  # (N, d/H)
        return torch.cat(out, dim=1)


def lse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LSE(X; Y) = mean_x log Σ_y exp(x·y): x (B, d), y (M, d). A stable logsumexp where the
    reference writes log(exp(.).sum()) (equal unless that overflows)."""
    return row_logsumexp(x, y).mean()


class AutoCF(Backbone):
    Config = AutoCFConfig
    uses_negatives = False

    def __init__(self, n_users: int, n_items: int, adj, cfg: AutoCFConfig, generator=None):
        super().__init__(n_users, n_items, adj, cfg, generator)
        cfg.validate()
        n = n_users + n_items
        d = cfg.embedding_size
        self.gt = nn.ModuleList(GTLayer(d, cfg.heads) for _ in range(cfg.gt_layers))
        self.rows = adj.rows  # (nnz,) with adj.col: the edges of Â
        self.deg = adj.crow.diff().float().unsqueeze(1)  # (N, 1) binary degree
        self.ones = adj.op(torch.ones_like(adj.values))  # binary A for the seed scores
        # training state that a checkpoint must carry (see the module docstring)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("draw_seed", torch.full((), -1, dtype=torch.long))
        self.register_buffer("seeds", torch.zeros(min(cfg.seed_num, n), dtype=torch.long))
        self._graphs = None  # (encoder Propagator, decoder Graph, its edge counts) of the draw
        self._infomax = None  # -mean(noisy log-scores) of a draw made in this step
        self.register_load_state_dict_post_hook(AutoCF._after_load)

    @staticmethod
    def _after_load(module, incompatible_keys) -> None:
        module._graphs, module._infomax = None, None  # new buffers: rebuild from them

    # -- the masked graphs -------------------------------------------------------------
    def _rng(self):
        """(generator, device) of every draw: self.generator, else the global CPU RNG (the one
        the trainer seeds and checkpoints, also when training on a GPU)."""
        g = self.generator
        return g, (g.device if g is not None else torch.device("cpu"))

    def draw(self) -> torch.Tensor:
        """New seeds from the current layer-0 table; returns the noisy log-scores (N,).

        The reference scores the unmasked table even under Gen, so `self.ego()` is used.
        """
        g, dev = self._rng()
        u = torch.rand(len(self.deg), generator=g, device=dev).to(self.adj.device)  # (N,)
        scores = gumbel_log(local_scores(self.ones, self.deg, self.ego()), u)
        self.seeds.copy_(torch.topk(scores.detach(), len(self.seeds)).indices)
        # one integer seeds every other choice of this draw (sampled nodes, pairs)
        self.draw_seed.fill_(int(torch.randint(0, 2 ** 62, (1,), generator=g, device=dev)))
        self._graphs = None
        return scores

    def graphs(self):
        """(encoder, decoder) of the current draw, rebuilt from the buffers when missing."""
        if self._graphs is None:
            cfg, n = self.cfg, len(self.deg)
            g = torch.Generator().manual_seed(int(self.draw_seed))
            enc, dec = masked_graphs(self.rows, self.adj.col, self.seeds.to(self.rows.device), n,
                                     cfg.mask_depth, cfg.keep_rate, g, cfg.edge_decode)
            dec = Graph.from_edges(*dec, n)  # values: how often each edge occurs
            counts = dec.values if bool((dec.values != 1).any()) else None
            self._graphs = (self.adj.op(enc), dec, counts)
        return self._graphs

    # -- Backbone API ------------------------------------------------------------------
    def forward_graphs(self, e: torch.Tensor, enc, dec, counts=None) -> torch.Tensor:
        """Σ of every layer output: e, the `layers` products with enc (a Propagator), then the
        GT layers over dec (a Graph: its pattern is the decoder's edge list; `counts`: GTLayer)."""
        acc = x = e
        for _ in range(self.cfg.layers):
            x = enc.mm(x)  # (N, N) @ (N, d)
            acc = acc + x
        for gt in self.gt:
            x = gt(x, dec, counts)
            acc = acc + x
        return acc

    def on_epoch_start(self) -> None:
        """The trainer calls this before each epoch: the reference counts batches per epoch
        (`i % fix_steps == 0`), so the masks are redrawn at each epoch's first batch."""
        self.step.zero_()

    def encode(self, ego: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Final (N, d). train=True is one training step: it advances the step counter and,
        every `fix_steps` steps, redraws the masked graphs (the infomax term waits for
        `backbone_loss`). train=False: full Â for encoder and decoder, no state touched."""
        e = self.ego() if ego is None else ego
        if not train:
            return self.forward_graphs(e, self.adj.op(), self.adj)
        step = int(self.step)
        self.step.add_(1)
        self._infomax = None
        if step % self.cfg.fix_steps == 0 or int(self.draw_seed) < 0:
            self._infomax = -self.draw().mean()
        return self.forward_graphs(e, *self.graphs())

    def backbone_loss(self, final, users, pos, neg=None, ego=None):
        """Dot-product reward + L2 + uniformity terms (+ infomax on a redraw step); `neg` is
        unused (AutoCF has no negatives)."""
        u, i = self.split(final)
        eu, ep = u[users], i[pos]
        rec = -(eu * ep).sum(-1).mean()
        reg = l2_all(self, self.cfg.reg_weight)
        uniform = lse(u[torch.unique(users)], u) + lse(i[torch.unique(pos)], i)
        cl = self.cfg.ssl_reg * uniform + lse(eu, i)
        infomax, self._infomax = self._infomax, None
        loss = rec + reg + cl + (infomax if infomax is not None else 0.0)
        parts = {"rec": rec.detach(), "reg": torch.as_tensor(reg).detach(), "cl": cl.detach(),
                 "infomax": (infomax if infomax is not None else final.new_zeros(())).detach()}
        return loss, parts
