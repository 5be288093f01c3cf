"""The one training loop (recpipe.train.loop.fit): selection, patience, caps, accumulation,
autocast, resume, and a training subprocess killed mid-run then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recpipe.config import ParamError  # noqa: E402
from recpipe.train.loop import TrainConfig, fit, train_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Linear(torch.nn.Module):
    """Least squares y ~ x @ w: a model whose gradients are easy to reason about."""

    def __init__(self, d: int = 3):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(d))

    def loss(self, x, y):
        return ((x @ self.w - y) ** 2).mean()


class Rows:
    """Batches of (x, y) rows, in order (shuffle=False) or reshuffled by a seeded generator;
    `delay` seconds per batch makes an epoch slow on purpose."""

    def __init__(self, n: int, batch_size: int, shuffle: bool = False, delay: float = 0.0, seed: int = 0):
        g = np.random.default_rng(0)
        self.x = g.normal(size=(n, 3)).astype(np.float32)
        self.y = (self.x @ np.array([1.0, -2.0, 0.5]) + 0.1 * g.normal(size=n)).astype(np.float32)
        self.batch_size, self.shuffle, self.delay = batch_size, shuffle, delay
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def epoch(self):
        order = self.rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for s in range(0, len(order), self.batch_size):
            time.sleep(self.delay)
            at = order[s:s + self.batch_size]
            yield self.x[at], self.y[at]

    def state(self):
        return self.rng.bit_generator.state

    def load_state(self, s):
        self.rng.bit_generator.state = s


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 10, "eval_every": 1, "patience": 0, "select_metric": "score",
                          "lr": 0.05, **kw})


def test_patience_counts_validations_and_the_best_state_is_returned():
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.29, 0.9])  # 0.9 comes after patience ran out
    seen = []

    def validate(m):
        seen.append(m.w.detach().clone())
        return {"score": next(scores)}

    m = Linear()
    res = fit(m, Rows(32, 8), cfg(patience=3), validate=validate, progress=False)
    assert (res.stopped, res.best_epoch, res.best_score, res.epochs) == ("patience", 1, 0.3, 5)
    assert len(seen) == 5 and torch.equal(m.w, seen[1])  # the epoch-1 weights, not the last
    assert [("valid/score" in r) for r in res.history] == [True] * 5


def test_min_epochs_lets_a_run_leave_its_plateau_before_patience_stops_it():
    """LightGCN's slow start on the embedded sample: a popularity plateau for three
    validations, then the rise. Patience 2 alone stops on the plateau; min_epochs 6 does not,
    and patience still ends the run once it has passed min_epochs."""
    curve = [0.05, 0.055, 0.054, 0.055, 0.054, 0.08, 0.12, 0.11, 0.11, 0.11, 0.2]

    def run(**kw):
        scores = iter(curve)
        return fit(Linear(), Rows(32, 8), cfg(epochs=11, patience=2, **kw), progress=False,
                   validate=lambda m: {"score": next(scores)})

    plain = run()
    assert (plain.stopped, plain.epochs, plain.best_score) == ("patience", 4, 0.055)
    late = run(min_epochs=6)
    assert (late.stopped, late.epochs, late.best_epoch, late.best_score) == ("patience", 9, 6, 0.12)
    with pytest.raises(ParamError, match="min_epochs"):
        train_config({"min_epochs": -1}, {}, "graph.train")


def test_several_select_metrics_keep_a_state_when_any_beats_its_own_best():
    """MMHCL's rule (hellm.md 3.4): keep the state and reset patience when validation R@20 or
    N@20 improves on its own best so far."""
    rows = iter([(0.10, 0.05), (0.12, 0.04), (0.11, 0.06), (0.11, 0.05), (0.12, 0.06), (0.13, 0.01)])
    m = Linear()
    res = fit(m, Rows(32, 8), cfg(patience=2, select_metric="r|n"), progress=False,
              validate=lambda m: dict(zip("rn", next(rows))))
    # epoch 1: r improves; epoch 2: n improves (r drops); epochs 3, 4: neither beats its best
    assert (res.stopped, res.best_epoch, res.epochs, res.best_score) == ("patience", 2, 5, 0.11)
    with pytest.raises(ParamError, match="'x' is not computed"):
        fit(Linear(), Rows(32, 8), cfg(select_metric="r|x"), progress=False,
            validate=lambda m: {"r": 0.0})


def test_a_sum_of_select_metrics_is_one_score():
    """CLLM4Rec's rule (cllm4rec.md 5): keep the epoch with the largest R@20 + R@40 + N@100."""
    rows = iter([(0.10, 0.20, 0.05), (0.12, 0.15, 0.05), (0.09, 0.25, 0.04), (0.1, 0.1, 0.1)])
    res = fit(Linear(), Rows(32, 8), cfg(epochs=4, select_metric="a+b+c"), progress=False,
              validate=lambda m: dict(zip("abc", next(rows))))
    # sums 0.35, 0.32, 0.38, 0.30: epoch 2, though neither a nor c peaks there
    assert res.best_epoch == 2 and res.best_score == pytest.approx(0.38)
    assert res.history[2]["valid/a+b+c"] == pytest.approx(0.38)
    with pytest.raises(ParamError, match="'a\\+x' is not computed"):
        fit(Linear(), Rows(32, 8), cfg(select_metric="a+x"), progress=False,
            validate=lambda m: {"a": 0.0})


def test_validation_cadence_is_rlmrecs_and_the_last_epoch_is_validated():
    res = fit(Linear(), Rows(32, 8), cfg(epochs=8, eval_every=3), validate=lambda m: {"score": 0.0},
              progress=False)
    assert [r["epoch"] for r in res.history if "eval_s" in r] == [0, 3, 6, 7]
    assert res.stopped == "epochs" and res.best_epoch == 0  # ties keep the first


def test_time_budget_stops_training_and_validates_the_state_it_stopped_at():
    t0 = time.perf_counter()
    res = fit(Linear(), Rows(32, 8, delay=0.05), cfg(epochs=1000, eval_every=1000, time_budget_s=0.6),
              validate=lambda m: {"score": -float(m.w.sum())}, progress=False)
    wall = time.perf_counter() - t0
    assert res.stopped == "time_budget" and 0.6 <= res.elapsed_s < 2.0 and wall < 5
    assert res.epochs < 10  # 4 batches x 0.05 s an epoch: about 3 epochs fit in 0.6 s
    assert "valid/score" in res.history[-1] and res.best_epoch in (0, res.epochs - 1)


def test_max_steps_stops_mid_epoch():
    res = fit(Linear(), Rows(24, 8), cfg(max_steps=7), validate=lambda m: {"score": 1.0}, progress=False)
    assert (res.stopped, res.steps, res.epochs) == ("max_steps", 7, 3)  # 3 steps an epoch: 3 + 3 + 1


@pytest.mark.parametrize("n", [24, 20])  # 20 rows: the epoch ends on a lone micro-batch
def test_k_micro_batches_step_like_one_batch_k_times_larger(n):
    """Plain SGD, rows in order: with grad_accum=2 each step's gradient is the mean over 2
    micro-batches of 4, i.e. the gradient of the batch of 8 with grad_accum=1."""
    big, small = Linear(), Linear()
    fit(big, Rows(n, 8), cfg(epochs=3), optimizer=torch.optim.SGD(big.parameters(), lr=0.1), progress=False)
    res = fit(small, Rows(n, 4), cfg(epochs=3, grad_accum=2),
              optimizer=torch.optim.SGD(small.parameters(), lr=0.1), progress=False)
    assert res.steps == 3 * 3
    assert torch.allclose(big.w, small.w, atol=1e-6) and not torch.equal(small.w, torch.zeros(3))


def test_bf16_autocast_trains_on_cpu_and_fp16_needs_cuda():
    m = Linear()
    res = fit(m, Rows(32, 8), cfg(epochs=30, amp="bf16", lr=0.1), progress=False)
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    if not torch.cuda.is_available():
        with pytest.raises(ParamError, match="fp16.*CUDA"):
            fit(Linear(), Rows(8, 8), cfg(amp="fp16"), progress=False)


def test_train_section_errors_name_the_key_and_model_defaults_apply():
    tc = train_config({"patience": 2}, {"lr": 0.01, "epochs": 200}, "baselines.bprmf.train")
    assert (tc.lr, tc.epochs, tc.patience, tc.eval_every) == (0.01, 200, 2, 3)
    with pytest.raises(ParamError, match=r"baselines.bprmf.train.grad_accum: 0 must be >= 1"):
        train_config({"grad_accum": 0}, {}, "baselines.bprmf.train")
    with pytest.raises(ParamError, match=r"graph.train: unknown key\(s\) epoch\b"):
        train_config({"epoch": 3}, {}, "graph.train")
    with pytest.raises(ParamError, match="select_metric: 'ndcg@7' is not computed.*score"):
        fit(Linear(), Rows(8, 8), cfg(select_metric="ndcg@7"), validate=lambda m: {"score@1": 1.0},
            progress=False)


def test_a_run_capped_by_epochs_continues_when_resumed_with_more(tmp_path):
    full = fit(Linear(), Rows(32, 8, shuffle=True), cfg(epochs=6), progress=False,
               validate=lambda m: {"score": -float(m.w.sum())})
    ck = tmp_path / "ckpt"
    fit(Linear(), Rows(32, 8, shuffle=True), cfg(epochs=3), ckpt=ck, signature="s", progress=False,
        validate=lambda m: {"score": -float(m.w.sum())})
    m = Linear()
    more = fit(m, Rows(32, 8, shuffle=True), cfg(epochs=6), ckpt=ck, signature="s", progress=False,
               validate=lambda m: {"score": -float(m.w.sum())})
    assert [r["loss"] for r in more.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)
    assert more.epochs == 6 and more.best_epoch == full.best_epoch
    # another signature (config, split or code changed): the checkpoint is not continued
    other = fit(Linear(), Rows(32, 8, shuffle=True), cfg(epochs=2), ckpt=ck, signature="t", progress=False)
    assert other.epochs == 2 and len(other.history) == 2


def test_lr_schedule_is_a_function_of_the_fractional_epoch_and_survives_resume(tmp_path):
    """lr_lambda(e) sets every step's lr (e = epoch + batch / batches); a resumed run uses the
    schedule's lr, not the one its checkpoint's optimiser had at the kill."""

    def run(epochs, ckpt=None):
        seen = []
        opt_box = {}

        class Spy(Linear):
            def loss(self, x, y):
                seen.append(opt_box["opt"].param_groups[0]["lr"])
                return super().loss(x, y)

        m = Spy()
        opt_box["opt"] = torch.optim.SGD(m.parameters(), lr=0.1)
        res = fit(m, Rows(32, 8), cfg(epochs=epochs, lr=0.1), optimizer=opt_box["opt"],
                  lr_lambda=lambda e: 0.5 ** (e // 2) * (1 + e % 1), ckpt=ckpt, signature="s",
                  progress=False, validate=lambda m: {"score": -float(m.w.sum())})
        return seen, res

    seen, full = run(4)
    # the lr seen in batch b is the one set before the previous step (the first: the initial 0.1)
    want = [0.1 * 0.5 ** (e // 2) * (1 + b / 4) for e in range(4) for b in range(4)]
    assert seen[1:] == pytest.approx(want[:-1])
    run(3, tmp_path / "ck")
    _, more = run(4, tmp_path / "ck")
    assert [r["loss"] for r in more.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)


KILLED_RUN = textwrap.dedent("""
    import json, sys, time
    from recpipe.eval.data import load_split
    from recpipe.eval.protocol import resolve
    from recpipe.graph.run import build, train
    from recpipe.train.loop import TrainConfig

    processed, ckpt, out, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    data = load_split(processed)
    model = build("lightgcn", "gen", data, (data.train.toarray()[:, :8] + 0.5,
                  data.train.T.toarray()[:, :8] + 0.5), 11)
    loss = model.loss
    model.loss = lambda *b: (time.sleep(delay), loss(*b))[1]  # slow steps: time to kill it
    cfg = TrainConfig(epochs=14, eval_every=2, patience=0, batch_size=256)
    res = train(model, data, cfg, resolve({"preset": "rlmrec"}), 11, ckpt=ckpt or None,
                signature="kill-test", progress=False)
    json.dump({"test": res["test"].summary, "best_epoch": res["best_epoch"],
               "loss": [h["loss"] for h in res["history"]], "steps": res["fit"].steps},
              open(out, "w"))
""")


def _ckpt_epoch(ckpt: Path) -> int:
    from recpipe.train import checkpoint

    try:
        return checkpoint._doc(ckpt)["meta"]["loop"]["epoch"]
    except Exception:  # not written yet, or being renamed into place
        return 0


def test_a_killed_training_subprocess_resumes_to_the_uninterrupted_result(small_processed, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}

    def run(ckpt: str, out: Path, delay: str) -> list[str]:
        return [sys.executable, str(script), str(small_processed), ckpt, str(out), delay]

    subprocess.run(run("", tmp_path / "full.json", "0"), env=env, check=True, timeout=300)
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(run(str(ckpt), tmp_path / "killed.json", "0.02"), env=env)
    deadline = time.time() + 240
    while _ckpt_epoch(ckpt) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed: make its steps slower"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _ckpt_epoch(ckpt)
    assert 5 <= killed_at < 14 and not (tmp_path / "killed.json").exists()
    done = subprocess.run(run(str(ckpt), tmp_path / "resumed.json", "0"), env=env, check=True,
                          timeout=300, capture_output=True, text=True)
    assert f"resumed from {ckpt} at epoch {killed_at}" in done.stdout
    full, resumed = (json.loads((tmp_path / f).read_text()) for f in ("full.json", "resumed.json"))
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-6) and len(full["loss"]) == 14
    assert resumed["best_epoch"] == full["best_epoch"] and resumed["steps"] == full["steps"]
    assert resumed["test"] == pytest.approx(full["test"], rel=1e-6)


def test_training_runs_deterministic_kernels_and_restores_the_callers_setting():
    """CPU index_put_ accumulation (embedding gradients) adds in thread order unless torch's
    deterministic mode is on: LightGCN-Con runs drifted apart after ~20 epochs without it."""
    seen = []

    class Probe(Linear):
        def loss(self, x, y):
            seen.append(torch.are_deterministic_algorithms_enabled())
            return super().loss(x, y)

    assert not torch.are_deterministic_algorithms_enabled()
    fit(Probe(), Rows(16, 8), cfg(epochs=1), progress=False)
    fit(Probe(), Rows(16, 8), cfg(epochs=1, deterministic=False), progress=False)
    assert seen == [True, True, False, False]
    assert not torch.are_deterministic_algorithms_enabled()


MID_EPOCH_RUN = textwrap.dedent("""
    import json, sys, time
    import numpy as np, torch
    from recpipe.train.loop import TrainConfig, fit

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))
            self.drop = torch.nn.Dropout(0.3)  # draws from torch's RNG: the checkpoint keeps it

        def loss(self, x, y):
            return ((self.drop(x) @ self.w - y) ** 2).mean()

    class Rows:  # 30 shuffled batches an epoch, slow on purpose
        def __init__(self, delay):
            g = np.random.default_rng(0)
            self.x = g.normal(size=(240, 3)).astype(np.float32)
            self.y = (self.x @ np.array([1.0, -2.0, 0.5])).astype(np.float32)
            self.rng, self.delay = np.random.default_rng(1), delay

        def __len__(self):
            return 30

        def epoch(self):
            order = self.rng.permutation(240)
            for s in range(0, 240, 8):
                time.sleep(self.delay)
                yield self.x[order[s:s + 8]], self.y[order[s:s + 8]]

        def state(self):
            return self.rng.bit_generator.state

        def load_state(self, s):
            self.rng.bit_generator.state = s

    ckpt, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    torch.manual_seed(0)
    m = Linear()
    cfg = TrainConfig(epochs=3, eval_every=1, patience=0, lr=0.01, grad_accum=2, save_every=2,
                      select_metric="score")
    res = fit(m, Rows(delay), cfg, validate=lambda m: {"score": -float(m.w.norm())},
              ckpt=ckpt or None, signature="mid", progress=False)
    json.dump({"loss": [h["loss"] for h in res.history], "w": m.w.tolist(),
               "steps": res.steps, "best": res.best_epoch}, open(out, "w"))
""")


def _ckpt_loop(ckpt: Path) -> dict:
    from recpipe.train import checkpoint

    try:
        return checkpoint._doc(ckpt)["meta"]["loop"]
    except Exception:  # not written yet, or being renamed into place
        return {}


def test_a_run_killed_inside_an_epoch_resumes_at_its_batch(tmp_path):
    """save_every: the checkpoint keeps the epoch's position, its batch source's state at the
    epoch start and its loss so far; the resumed run replays the order, skips the trained
    batches and ends with the uninterrupted run's losses, weights and steps (dropout too)."""
    script = tmp_path / "run.py"
    script.write_text(MID_EPOCH_RUN)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    run = lambda c, o, d: [sys.executable, str(script), c, str(o), d]  # noqa: E731
    subprocess.run(run("", tmp_path / "full.json", "0"), env=env, check=True, timeout=120)
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(run(str(ckpt), tmp_path / "killed.json", "0.02"), env=env)
    deadline = time.time() + 120
    while not (_ckpt_loop(ckpt).get("epoch") == 1 and _ckpt_loop(ckpt).get("pos", 0) >= 8) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed: make its steps slower"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = _ckpt_loop(ckpt)
    assert at["epoch"] == 1 and 8 <= at["pos"] < 30 and at["pos"] % 2 == 0, at
    done = subprocess.run(run(str(ckpt), tmp_path / "resumed.json", "0"), env=env, check=True,
                          timeout=120, capture_output=True, text=True)
    assert f"at epoch 1, batch {at['pos']}" in done.stdout
    full, resumed = (json.loads((tmp_path / f).read_text()) for f in ("full.json", "resumed.json"))
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-6)
    assert resumed["w"] == pytest.approx(full["w"], rel=1e-6)
    assert resumed["steps"] == full["steps"] == 45 and resumed["best"] == full["best"]


def test_a_two_process_run_killed_inside_an_epoch_resumes_at_its_batch(tmp_path):
    """The same run on 2 gloo processes under torchrun (2 x grad_accum 2 = 4 batches a step,
    8 steps an epoch, the last one short): both processes must agree on where a mid-epoch
    checkpoint stands, so the killed run resumes at one position and ends as the
    uninterrupted one. The processes draw the same number of dropout values per step, so
    process 0's saved RNG state is every process's."""
    script = tmp_path / "run.py"
    script.write_text(MID_EPOCH_RUN.replace(
        "json.dump(", "import os\n"
        "if os.environ.get('RANK', '0') == '0':\n    json.dump("))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE"):
        env.pop(k, None)

    def run(c, o, d):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", str(script), c, str(o), d]

    subprocess.run(run("", tmp_path / "full.json", "0"), env=env, check=True, timeout=180)
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(run(str(ckpt), tmp_path / "killed.json", "0.05"), env=env)
    deadline = time.time() + 150
    while not (_ckpt_loop(ckpt).get("epoch") == 1 and _ckpt_loop(ckpt).get("pos", 0) >= 8) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed: make its steps slower"
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on: both workers die mid-epoch
    proc.wait()
    at = _ckpt_loop(ckpt)
    assert at["epoch"] == 1 and 8 <= at["pos"] < 30 and at["pos"] % 4 == 0, at
    done = subprocess.run(run(str(ckpt), tmp_path / "resumed.json", "0"), env=env, check=True,
                          timeout=180, capture_output=True, text=True)
    assert f"at epoch 1, batch {at['pos']}" in done.stdout
    full, resumed = (json.loads((tmp_path / f).read_text()) for f in ("full.json", "resumed.json"))
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-6)
    assert resumed["w"] == pytest.approx(full["w"], rel=1e-6)
    assert resumed["steps"] == full["steps"] == 24 and resumed["best"] == full["best"]
