"""Why HUM's raw dot product ranks like a random popularity on a small causal LM, and what
centring does: the geometry of the untrained encoder's <|emb|> states and the rankings of four
scores (a diagnostic: forward passes only, no training step).

    python benchmarks/hum_centring.py                       # smollm2-135m, ~3 min on 2 cores
    python benchmarks/hum_centring.py --model tiny-qwen2 --users 64

The data: the embedded sample at its defaults (2,000 users x 1,500 items in 3 domains, split
seed 2023), ranked as the default evaluator ranks it (every item of every domain, users as
units). The encoder: HUM's on `--model`, LoRA at its init (an identity), `--users` test users
drawn with `--seed`; a user's text is the titles of the last 10 items of train + valid.

Reported:
- the share of sum ||e||^2 along the mean vector, for users and for items, and the cosine
  between the two means;
- test Recall@20 / NDCG@20 through the one evaluator for: MostPopular (training counts); the
  raw dot product (the reference); the dot product with the users' mean subtracted (the
  shared per-item offset mean_user . item gone); the cosine of both sides centred
  (`hum.center: mean`, `hum.score: cosine`, the CPU default); and the cosine with the item
  mean subtracted from both sides.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_cllm4rec_batches import sample_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--users", type=int, default=300, help="test users scored")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1, help="draws the users and LoRA's init")
    args = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    from recpipe.config import parse
    from recpipe.data.view import load_view
    from recpipe.eval.evaluator import evaluate
    from recpipe.eval.protocol import resolve
    from recpipe.hum.data import histories
    from recpipe.hum.params import HUMParams
    from recpipe.hum.run import build, item_vectors
    from recpipe.train.seeds import subsample

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()  # the split lives until the process ends
    data = load_view(sample_split(Path(tmp.name), 2023))
    p = parse(HUMParams, {"model": args.model, "device": "cpu", "dtype": "float32"}, prefix="hum")
    p.validate()  # the reference's scoring: raw dot products, nothing subtracted
    model, _, texts = build(p, data, args.seed, "cpu")
    model.eval()
    users = subsample(data.n_users, args.users, args.seed, 2)
    users = np.arange(data.n_users) if users is None else users
    seqs = data.sequences(("train", "valid"))
    with torch.no_grad():
        V = item_vectors(model, texts, 32, "cpu")                           # [I, H]
        U = model.encode_all([texts.user(h) for h in histories(seqs, users, seqs.indptr[users + 1],
                              p.history)], texts.pad, 32, "cpu", 0)       # [U, H]
    mu, mv = U.mean(0), V.mean(0)

    def share(X, m):  # the share of sum ||x||^2 along the mean m: ||m||^2 / mean ||x||^2
        return float(m.norm() ** 2 / (X.norm(dim=1) ** 2).mean())

    print(f"{args.model}: {len(users)} users, {len(V)} items, hidden {V.shape[1]}")
    print(f"share along the mean: users {share(U, mu):.3f}, items {share(V, mv):.3f}; "
          f"cos(user mean, item mean) {float(F.cosine_similarity(mu, mv, 0)):.3f}")

    row = {int(u): k for k, u in enumerate(users)}
    cfg = resolve(None)
    count = torch.as_tensor(np.asarray(data.train.sum(0)).ravel(), dtype=torch.float32)
    scores = {
        "MostPopular": count.expand(len(users), -1),
        "dot (the reference)": U @ V.T,
        "dot, user mean removed": (U - mu) @ V.T,
        "cosine, each side centred (default)": F.normalize(U - mu, dim=1) @ F.normalize(V - mv, dim=1).T,
        "cosine, item mean removed": F.normalize(U - mv, dim=1) @ F.normalize(V - mv, dim=1).T,
    }
    print("\n| scores | test recall@20 | test ndcg@20 |\n|---|---|---|")
    for name, S in scores.items():
        r = evaluate(lambda us, S=S: S[[row[int(u)] for u in us]].clone(), data, cfg, "test",
                     users).summary
        print(f"| {name} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} |")


if __name__ == "__main__":
    main()
