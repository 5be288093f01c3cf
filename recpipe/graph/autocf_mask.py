"""AutoCF's learned subgraph masking, vectorised: seed scoring (the reference's `LocalGraph`)
and the masked encoder/decoder graphs (`RandomMaskSubgraphs` + `AutoCFTrainer`).

Xia et al., "Automated Self-Supervised Learning for Recommendation", WWW 2023.
Reference code: https://github.com/HKUDS/AutoCF and https://github.com/HKUDS/RLMRec
(encoder/models/general_cf/autocf.py). rlmrec.md section 6, AutoCF row.

Edges are the stored entries of Â (both directions of every user-item pair, no self-loops),
as parallel `rows`/`cols` (nnz,) int64 tensors in CSR (row-major) order. The reference walks
the 100 seeds one by one in Python; removing "every edge touching a node of a set" does not
depend on that order, so each depth is one boolean gather here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def local_scores(ones, deg: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """σ(cos(z_v, e_v)) per node, (N,): how well a node agrees with its 2-hop neighbourhood.

    `ones` is the binary adjacency A (a Propagator: `ones.mm(x)` = A @ x), `deg` (N, 1) its
    row sums, `e` (N, d) the layer-0 embeddings. The correction terms are the reference's
    (they subtract e_v as if A had self-loops; A has none). In walk form:
        z_v = Σ_{u∈N(v)} [Σ_{w∈N(u), w≠v} e_w − e_u] / (Σ_{u∈N(v)} (deg_u − 1) + 1e-8)
    """
    fst = ones.mm(e) - e  # (N, d)
    scd = (ones.mm(fst) - fst) - deg * e
    with torch.no_grad():  # counts only, no gradient needed
        scd_num = (ones.mm(deg) - deg) - deg
    z = (fst + scd) / (deg + scd_num + 1e-8)
    return torch.sigmoid((F.normalize(z, p=2, dim=-1) * F.normalize(e, p=2, dim=-1)).sum(-1))


def gumbel_log(scores: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log(scores) + Gumbel(0, 1) noise from uniforms `u` (the reference's `makeNoise`).

    u = 0 (torch.rand can return it: p = 2^-24 a node) gives the reference -inf noise and an
    infinite infomax loss; it is clamped to the smallest positive float instead.
    """
    u = u.clamp_min(torch.finfo(u.dtype).tiny)
    return torch.log(scores) - torch.log(-torch.log(u))


def mask_edges(rows, cols, seeds, n: int, depth: int):
    """Drop every edge touching the seeds, then (depth 2) every edge touching the nodes of the
    edges just dropped (the seeds' 1-hop neighbours), and so on for `depth` rounds.

    Returns (keep (nnz,) bool: the remaining edges, masked (N,) bool: the seeds and every
    endpoint of an edge dropped before the last round, as the reference's `maskNodes`).
    """
    keep = torch.ones_like(rows, dtype=torch.bool)
    cur = torch.zeros(n, dtype=torch.bool, device=rows.device)
    cur[seeds] = True
    masked = cur.clone()
    for d in range(depth):
        hit = keep & (cur[rows] | cur[cols])  # remaining edges touching the current set
        keep &= ~hit
        if d < depth - 1:
            cur = torch.zeros_like(cur)
            cur[rows[hit]] = True  # the graph is symmetric, so rows cover both endpoints
            masked |= cur
    return keep, masked


def encoder_values(rows, cols, keep, n: int) -> torch.Tensor:
    """Sym-normalised values of the remaining edges on Â's structure (dropped edges = 0)."""
    w = keep.float()
    deg = torch.zeros(n, device=rows.device).index_add_(0, rows, w)
    dinv = (deg + 1e-12).pow(-0.5)  # the reference's epsilon; rows without edges stay unused
    return w * dinv[rows] * dinv[cols]


def decode_edges(code: torch.Tensor, n: int, how: str = "exact"):
    """(rows, cols) of edge codes row·n + col.

    `exact`: integer division. `float32`: the reference's `((code - col) / n).long()`, which
    torch computes in float32, on CUDA (the reference's only device) as float32(code - col)
    times float32(1/n), truncated. Where row·n is past 2^24 the product can land just below
    the integer row, and the edge moves to row - 1 (never elsewhere; the column stays). The
    share depends on n: about 11% of uniform pairs at Amazon's n = 20,332, none at 10,000 or
    30,000 (the same expression on a CPU divides instead: 4.9% at 20,332, 11% at 30,000).
    Done here with the CUDA operations in float32, so every device gives the reference's
    CUDA result.
    """
    col = code % n
    if how == "exact":
        return code // n, col
    if how != "float32":
        raise ValueError(f"edge decode {how!r}: choose exact or float32")
    inv = torch.ones((), dtype=torch.float32, device=code.device) / n  # float32(1/n), rounded once
    return ((code - col).to(torch.float32) * inv).long(), col


def decoder_edges(rows, cols, keep, nodes, n: int, n_pairs: int, generator: torch.Generator,
                  decode: str = "exact"):
    """Decoder graph: `n_pairs` random pairs among `nodes` (both directions) + self-loops on
    every node + the remaining edges, deduplicated, then decoded (`decode_edges`). Returns
    (rows, cols): with `exact` unique and sorted row-major; with `float32` some edges have
    moved a row up, as in the reference, and may repeat another edge (kept twice, as there).

    Draws come from `generator` (CPU) so the graph can be rebuilt from one stored seed.
    """
    dev = rows.device
    pick = torch.randint(len(nodes), (2, n_pairs), generator=generator).to(dev)
    pr, pc = nodes[pick[0]], nodes[pick[1]]
    loop = torch.arange(n, device=dev)
    r = torch.cat([pr, pc, loop, rows[keep]])
    c = torch.cat([pc, pr, loop, cols[keep]])
    code = torch.unique(r * n + c)  # sorted: rows ascending, then cols
    return decode_edges(code, n, decode)


def masked_graphs(rows, cols, seeds, n: int, depth: int, keep_rate: float, generator,
                  decode: str = "exact"):
    """The reference's `RandomMaskSubgraphs.forward`: (encoder values on Â's structure,
    decoder (rows, cols)). The masked node set adds ⌊keep_rate·N⌋ uniform draws (with
    replacement, so fewer distinct nodes) to the seeds and their neighbours."""
    keep, masked = mask_edges(rows, cols, seeds, n, depth)
    extra = torch.randint(n, (int(n * keep_rate),), generator=generator).to(rows.device)
    masked[extra] = True
    nodes = masked.nonzero().squeeze(1)  # sorted, as torch.unique in the reference
    dec = decoder_edges(rows, cols, keep, nodes, n, len(rows), generator, decode)
    return encoder_values(rows, cols, keep, n), dec
