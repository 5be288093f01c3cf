"""CLLM4Rec runs, composed the same way wherever they happen (the two stages, tests):

    setup(p, processed, data, seed, device)  -> Setup: backbone, ID tokens, users, documents
    pretrain(setup, ...)   content warm-up, then collaborative <-> content epochs (no validation:
                           the last state is kept, as the reference keeps its latest best loss)
    recpipe.cllm4rec.finetune.finetune(setup, tables, ...)  the rec set (that module: it is the
                           one that evaluates, so pretraining does not depend on the evaluator)
Both go through recpipe.train.loop.fit, one model class and one batch-source protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recpipe.config import ParamError
from recpipe.train.seeds import subsample


def configure(params: dict):
    """(CLLM4RecParams, seeds) from params.yaml (both stages); raises ParamError."""
    from recpipe.cllm4rec.params import CLLM4RecParams
    from recpipe.config import section
    from recpipe.train.seeds import parse_seeds, top_seed

    p = section(params, "cllm4rec", CLLM4RecParams)
    return p, parse_seeds(p.seeds, top_seed(params), "cllm4rec.seeds")


def signature(p, seed: int, data, phase: str, *inputs) -> str:
    """What a checkpoint of `phase` must agree on to be resumed: params (not the caps, device,
    threads or evaluation sizes), the seed, the split, `inputs` (arrays) and the code."""
    from dataclasses import replace

    from recpipe.train.checkpoint import fingerprint

    key = replace(p, device="", threads=0, eval_batch_size=0, eval_users=0,
                  pretrain={k: v for k, v in p.pretrain.items() if k != "train"},
                  finetune={k: v for k, v in p.finetune.items() if k != "train"})
    tc = (p.pretrain_params() if phase == "pretrain" else p.finetune_params()).train_config()
    return fingerprint(key, tc.resume_key(), phase, seed, data, *inputs,
                       code=("train", "llm", "cllm4rec"))


@dataclass
class Setup:
    p: object                    # CLLM4RecParams
    data: object                 # DataView
    lm: object
    tokenizer: object
    ids: object                  # IdTokens
    pieces: object               # recpipe.cllm4rec.data.Pieces
    users: list                  # [(uid, training items ascending)] of the training users
    docs: list                   # [(prompt ids, main ids)]
    text_source: str | None      # "review" | "item" | None (no content LM)
    device: str
    seed: int


def setup(p, processed: Path, data, seed: int, device: str = "cpu") -> Setup:
    from recpipe.cllm4rec.data import Pieces, documents, tokenize_documents
    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.tokens import add_id_tokens

    lm, tok = load_backbone(p.model, device=device, dtype=p.dtype, attn=p.attn, seed=seed,
                            key="cllm4rec")
    ids = add_id_tokens(None, tok, data.n_users, data.n_items)  # tokenizer only: two sets
    pieces = Pieces.of(tok)
    chosen = subsample(data.n_users, p.users, seed, 1)
    train = data.train
    users = [(u, train.indices[train.indptr[u]:train.indptr[u + 1]].astype(np.int64))
             for u in (range(data.n_users) if chosen is None else chosen.tolist())]
    users = [(u, np.sort(items)) for u, items in users if len(items)]
    docs, source = [], None
    if p.pretrain_params().content:
        table, source = documents(Path(processed), chosen, p.fallback)
        if source is None:
            print(f"cllm4rec: content LM off: {processed}/interactions.parquet has no review "
                  f"text in its training rows and items.parquet no titles or descriptions; "
                  f"the collaborative LM runs alone")
        else:
            docs = tokenize_documents(table, tok, ids, pieces, p.doc_tokens)
    return Setup(p, data, lm, tok, ids, pieces, users, docs, source, device, seed)


def build(s: Setup, tables: dict | None = None):
    """The CLLM4Rec module on the device; `tables` {set: [n_users + n_items, H]} loads sets."""
    import torch

    from recpipe.cllm4rec.model import CLLM4Rec
    from recpipe.train.seeds import seed_everything

    seed_everything(s.seed)
    model = CLLM4Rec(s.lm, s.ids, s.p.mode, s.p.lambda_v, s.p.ce_chunk, content=bool(s.docs))
    if tables is None and s.docs and s.p.pretrain_params().content_init == "mean":
        with torch.no_grad():
            model.sets["con"].weight.copy_(mean_init(s, model.sets["con"].weight))
    for name, w in (tables or {}).items():
        if name in model.sets:
            with torch.no_grad():
                model.sets[name].weight.copy_(torch.as_tensor(w))
    return model.to(s.device)


def mean_init(s: Setup, current):
    """Each ID row at the mean vocabulary embedding of its documents' text tokens (the
    author's suggestion, cllm4rec.md 10); rows without documents keep `current`."""
    import torch

    wte = s.lm.get_input_embeddings().weight.detach().float().cpu()
    out, n = current.detach().clone().cpu().zero_(), torch.zeros(current.shape[0])
    for prompt, main in s.docs:
        v = wte[torch.as_tensor(main)].mean(0)
        for tid in prompt:
            if s.ids.user_base <= tid < s.ids.end:
                out[tid - s.ids.user_base] += v
                n[tid - s.ids.user_base] += 1
    seen = n > 0
    out[seen] /= n[seen, None]
    out[~seen] = current.detach().cpu()[~seen]
    return out


def _throughput(model, s: Setup) -> None:
    from recpipe.llm.flops import peak_flops, train_flops_per_token

    seq = int(np.mean([len(p) + len(m) for p, m in s.docs])) if s.docs else 32
    model.flops_per_token = train_flops_per_token(s.lm, seq)  # frozen: 4N + attention
    model.peak_flops = peak_flops(str(s.device))[0]


def pretrain(s: Setup, *, ckpt=None, live=None, signature: str = "", progress: bool = True):
    """(model, FitResult): the pretrained col and con sets."""
    from recpipe.cllm4rec.batches import PretrainBatches
    from recpipe.train.loop import fit

    pp = s.p.pretrain_params()
    tc = pp.train_config()
    model = build(s)
    batches = PretrainBatches(s.users, s.docs, s.ids, s.pieces, tc.batch_size, s.seed,
                              warmup=pp.content_warmup, reorder=s.p.mode == "clean",
                              max_tokens=s.p.max_tokens, group=s.p.group_by_length)
    if not len(batches):
        raise ParamError("cllm4rec: no training user has a training item")
    _throughput(model, s)
    res = fit(model, batches, tc, device=s.device, ckpt=ckpt, live=live, signature=signature,
              progress=progress, desc="cllm4rec pretrain")
    return model, res
