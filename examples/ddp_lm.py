"""Example: fine-tune tiny-llama (LoRA + ID-token rows) with the training core, as one process or under
a launcher; process 0 writes the trained tensors and the loss curve. tests/test_train_ddp.py
compares 2 processes x grad_accum k with 1 process x grad_accum 2k.

    python examples/ddp_lm.py OUT_DIR GRAD_ACCUM [--processes N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def main() -> int:
    import torch
    from safetensors.torch import save_file

    from recpipe.llm.backbone import load_backbone
    from recpipe.llm.launch import launch
    from recpipe.llm.lora import LoraParams, apply_lora
    from recpipe.llm.tokens import add_id_tokens
    from recpipe.train.loop import TrainConfig, fit
    from recpipe.train.sampler import ListBatches

    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("grad_accum", type=int)
    ap.add_argument("--processes", type=int, default=1)
    args = ap.parse_args()
    rc = launch(args.processes, __file__, sys.argv[1:])
    if rc is not None:
        return rc
    torch.manual_seed(0)
    model, tok = load_backbone("tiny-llama", device="cpu", seed=0)
    ids = add_id_tokens(model, tok, n_users=4, n_items=6, seed=1)
    model = apply_lora(model, LoraParams(r=4, dropout=0.0),
                       trainable_token_indices=list(range(ids.user_base, ids.end)))

    def loss(input_ids):  # next-token cross-entropy, batch mean
        return model(input_ids=input_ids, labels=input_ids).loss

    model.loss = loss
    model.trainable_state_only = True
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    cfg = TrainConfig(epochs=2, eval_every=1, patience=0, grad_accum=args.grad_accum, lr=0.5)
    # 8 batches of 2 x 12 tokens over the base vocabulary and the ID tokens, reshuffled each
    # epoch by a seeded generator: the same order on every process
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, ids.end, (2, 12), generator=g) for _ in range(8)]
    res = fit(model, ListBatches(batches, seed=0), cfg, optimizer=opt, progress=False)
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_rank() == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        trained = {k: p.detach().contiguous() for k, p in model.named_parameters()
                   if p.requires_grad}
        save_file(trained, str(out / "trained.safetensors"))
        (out / "fit.json").write_text(json.dumps({
            "losses": [r["loss"] for r in res.history], "steps": res.steps,
            "world": dist.get_world_size() if dist.is_initialized() else 1}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
