"""Why CLLM4Rec's finetuned head starts at chance on a frozen SmolLM2: the geometry of the last
hidden state and what the reference's N(0, 0.02) item rows make of it (a diagnostic, forward
passes only).

    python benchmarks/cllm4rec_head_init.py                 # smollm2-135m, ~2 min on 2 cores
    python benchmarks/cllm4rec_head_init.py --model tiny-gpt2 --users 64

The data: the embedded sample at its defaults (2,000 users x 1,500 items, seed 2023). The
model: CLLM4Rec on `--model`, sets at the reference's init, `--users` validation users drawn
with the seed; each prompt is the scorer's (every training item, then "will interact with").

Reported:
- the last hidden state h [U, H]: mean norm, norm of the mean over users, the share of
  sum ||h||^2 along the mean direction, and the mean pairwise cosine;
- the item scores h @ E_item^T [U, I]: their std over items, and the std over items of the
  user-mean score (an offset every user shares: a random "popularity");
- validation Recall@20 / NDCG@20 through the one evaluator for: MostPopular; the init as it
  is; the init plus a per-item bias at the centred log(1 + training count); and the same with
  each item row's component along the mean h removed (the shared offset gone).
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
    ap.add_argument("--users", type=int, default=300, help="validation users scored")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=2023)
    args = ap.parse_args()

    import numpy as np
    import torch

    from recpipe.cllm4rec.finetune import CLLM4RecScorer
    from recpipe.cllm4rec.params import CLLM4RecParams
    from recpipe.cllm4rec.run import build, setup
    from recpipe.config import parse
    from recpipe.data.view import load_view
    from recpipe.eval.protocol import resolve
    from recpipe.train.seeds import subsample

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()  # the split lives until the process ends
    processed = sample_split(Path(tmp.name), args.seed)
    data = load_view(processed)
    p = parse(CLLM4RecParams, {"model": args.model, "users": 0, "pretrain": {"content": False}},
              prefix="cllm4rec")
    p.validate()
    s = setup(p, processed, data, args.seed)
    model = build(s)
    users = subsample(data.n_users, args.users, args.seed, 2)
    scorer = CLLM4RecScorer(model, s, 32)
    cfg = resolve(None)

    # the hidden states the scorer's prompts give, through the scorer's own code path
    hs = []
    model.scores = _capture(model, hs)
    scores = scorer(users)                                                    # [U, I]
    h = torch.cat(hs)                                                         # [U, H]
    del model.scores
    mean = h.mean(0)
    share = float((h @ torch.nn.functional.normalize(mean, dim=0)).pow(2).sum() / h.pow(2).sum())
    unit = torch.nn.functional.normalize(h, dim=-1)
    cos = float(((unit @ unit.T).sum() - len(h)) / (len(h) * (len(h) - 1)))
    _table(["mean norm of h", "norm of mean h", "share along mean h", "pairwise cos",
                 "score std over items", "shared offset std"],
                [[f"{h.norm(dim=-1).mean():.1f}", f"{mean.norm():.1f}", f"{share:.3f}",
                  f"{cos:.3f}", f"{scores.std(1).mean():.3f}", f"{scores.mean(0).std():.3f}"]])

    count = np.bincount(data.train.indices, minlength=data.n_items).astype(np.float32)
    bias = torch.from_numpy(np.log1p(count) - np.log1p(count).mean())
    rows = model.item_rows("col")
    with torch.no_grad():
        d = torch.nn.functional.normalize(mean, dim=0)
        deprojected = rows - (rows @ d)[:, None] * d[None]
    # the init's scores were computed once above: look the evaluated users' rows up
    row = {int(u): i for i, u in enumerate(users)}
    init = lambda u: scores[[row[int(x)] for x in u]]
    sides = {"MostPopular": lambda u: torch.from_numpy(count).expand(len(u), -1).clone(),
             "init (reference)": init,
             "init + log-count bias": lambda u: init(u) + bias}
    out = [[name, *_valid(fn, data, cfg, users)] for name, fn in sides.items()]
    with torch.no_grad():
        rows.copy_(deprojected)
    out.append(["init - mean-h part + bias", *_valid(lambda u: scorer(u) + bias, data, cfg, users)])
    _table(["scores", "valid recall@20", "valid ndcg@20"], out)
    print(f"{len(users)} validation users, {data.n_items:,} items, model {args.model}")


def _capture(model, sink: list):
    """model.scores that also appends the last hidden state [B, H] of each row to sink."""
    import torch

    def scores(ids, mask):
        h = model.hidden("col", ids, mask)
        last = h[torch.arange(len(h)), mask.sum(1) - 1].float()
        sink.append(last)
        return last @ model.item_rows("col").T

    return scores


def _valid(fn, data, cfg, users) -> list[str]:
    from recpipe.eval.evaluator import evaluate

    r = evaluate(fn, data, cfg, "valid", users).summary
    return [f"{r['recall@20']:.4f}", f"{r['ndcg@20']:.4f}"]


def _table(head: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
