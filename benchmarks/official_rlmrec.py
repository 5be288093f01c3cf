"""Time the official HKUDS/RLMRec code epoch by epoch, interleaved with recpipe's, in one run.

The official code (https://github.com/HKUDS/RLMRec, `encoder/`) is run unchanged from the
user's checkout: this file never copies or edits it, it only calls the functions its
`encoder/train_encoder.py` calls, in the same order, in a child process (its top-level packages
`config`, `models`, `trainer` would clash with ours). The child waits for a command on stdin
and answers with one JSON line, so the two codes never compute at the same time and share
the machine's state of the moment; that makes their ratio meaningful on a noisy machine where
absolute seconds drift by 2x within minutes.

The checkout needs `data/<dataset>/{trn,val,tst}_mat.pkl` and `usr_emb_np.pkl` /
`itm_emb_np.pkl` (its configurator loads them for every model; the plain LightGCN ignores
their values) under its root, as its README's data archive provides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

TAG = "recpipe-bench "  # marks our protocol lines among whatever the official code prints


def serve(root: Path, dataset: str, seed: int) -> None:
    """Child side: build the official trainer, then run one epoch per `epoch` line on stdin."""
    os.chdir(root)  # the official code opens ./encoder/config/... and ./data/... relative paths
    sys.path.insert(0, str(root / "encoder"))
    sys.argv = ["train_encoder.py", "--model", "lightgcn", "--dataset", dataset, "--device", "cpu",
                "--seed", str(seed)]
    from config.configurator import configs  # noqa: E402  (the official modules)
    from data_utils.build_data_handler import build_data_handler
    from models.bulid_model import build_model
    from trainer.build_trainer import build_trainer
    from trainer.logger import Logger
    from trainer.trainer import init_seed

    init_seed()
    handler = build_data_handler()
    handler.load_data()
    model = build_model(handler).to(configs["device"])
    trainer = build_trainer(handler, Logger())
    trainer.create_optimizer(model)  # what Trainer.train does before its epoch loop
    step = configs["train"]["test_step"]
    print(TAG + json.dumps({"ready": True, "test_step": step}), flush=True)
    epoch = 0
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        t0 = time.perf_counter()
        trainer.train_epoch(model, epoch)  # negative sampling + the batches, as in Trainer.train
        out = {"epoch": epoch, "epoch_s": time.perf_counter() - t0}
        if epoch % step == 0:
            t1 = time.perf_counter()
            res = trainer.evaluate(model, epoch)
            out.update(eval_s=time.perf_counter() - t1, recall20=float(res["recall"][-1]))
        print(TAG + json.dumps(out), flush=True)
        epoch += 1


class Official:
    """Parent side: a child process running the official code; `epoch()` runs one epoch."""

    def __init__(self, root: Path, dataset: str = "amazon", seed: int = 2023, threads: int = 0):
        root = Path(root).resolve()
        missing = [f for f in ("encoder/train_encoder.py", f"data/{dataset}/trn_mat.pkl",
                               f"data/{dataset}/usr_emb_np.pkl") if not (root / f).exists()]
        if missing:
            raise SystemExit(f"{root} is not a prepared HKUDS/RLMRec checkout: missing {', '.join(missing)}")
        env = dict(os.environ, PYTHONWARNINGS="ignore", TQDM_DISABLE="1")
        if threads:  # the same torch thread count as our side
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(root), dataset, str(seed)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.rows: list[dict] = []
        self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:  # the official code may print its own lines first
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
        raise RuntimeError(f"the official code exited with {self.proc.wait()} (run it by hand to see why)")

    def epoch(self) -> dict:
        self.proc.stdin.write("epoch\n")
        self.proc.stdin.flush()
        row = self._read()
        self.rows.append(row)
        return row

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
