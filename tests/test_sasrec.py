"""SASRec (recpipe/seq): causal masking, padding, the E4SRec training rows, the no-leak rule
on a leave-one-out split, the per-part scorer, and the `sasrec` stage end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from conftest import ROOT, shared_path, stage  # noqa: E402
from recpipe.config import ParamError, parse  # noqa: E402
from recpipe.seq.batches import SeqBatches, shift  # noqa: E402
from recpipe.seq.params import SASRecConfig, SASRecParams  # noqa: E402
from recpipe.seq.sasrec import SASRec  # noqa: E402

# user -> items in time order; LOO keeps users with < 3 items whole in train: user 6's two items
# make one training row, user 7's single item none
SEQS = {1: [3, 5, 2, 9, 4, 7], 2: [1, 2, 3, 4], 3: [8, 6, 4, 2, 1, 3, 5, 7, 9, 10],
        4: [10, 9, 8, 7, 6], 5: [2, 4, 6, 8, 10, 1, 3], 6: [5, 6], 7: [3]}


def loo_split(tmp_path, raw=None, **split):
    """A real processed LOO split of S3Rec files in `raw` (default: SEQS written as one), run
    through the ingest and split stages; returns the processed folder."""
    if raw is None:
        raw = tmp_path / "raw"
        raw.mkdir()
        (raw / "Toy.txt").write_text("".join(f"{u} {' '.join(map(str, s))}\n" for u, s in SEQS.items()))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dataset"].update(format="seqtxt", path=str(raw))
    params["split"].update(**{"protocol": "loo", "user_core": 0, "item_core": 0, **split})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p, interim, processed = str(tmp_path / "params.yaml"), tmp_path / "interim", tmp_path / "processed"
    assert stage("ingest").main(["--params", p, "--out", str(interim), "--metrics", str(interim / "m.json")]) == 0
    assert stage("split").main(["--params", p, "--interim", str(interim), "--ingest-report",
                                str(interim / "m.json"), "--out", str(processed),
                                "--metrics", str(tmp_path / "dataset.json")]) == 0
    return processed


def small_model(n_items=12, **kw) -> SASRec:
    return SASRec(n_items, SASRecConfig(**{"dim": 8, "maxlen": 6, "dropout": 0.0, **kw}), seed=0).eval()


def test_attention_is_causal_and_left_padding_is_inert():
    m = small_model()
    seq = torch.tensor([[0, 0, 3, 5, 2, 9]])
    h = m.encode(seq)
    later = seq.clone()
    later[0, 4:] = torch.tensor([7, 1])
    assert torch.allclose(m.encode(later)[0, :4], h[0, :4], atol=1e-6)  # the past ignores the future
    assert not torch.allclose(m.encode(later)[0, 4:], h[0, 4:])
    # the padding row's values never reach an output or the loss ...
    with torch.no_grad():
        m.embedding.weight[0] += 5.0
    assert torch.allclose(m.encode(seq), h, atol=1e-6)
    # ... and it receives no gradient (targets 0 = no target at padding positions)
    m.train()
    pos, neg = torch.tensor([[0, 0, 5, 2, 9, 4]]), torch.tensor([[0, 0, 1, 1, 1, 1]])
    m.loss(seq, pos, neg).backward()
    assert m.embedding.weight.grad[0].abs().sum() == 0
    assert m.embedding.weight.grad[5].abs().sum() > 0


def test_the_ffn_is_the_references_kernel_1_convolution():
    m = small_model()
    ffn, x = m.forward_layers[0], torch.randn(3, 6, 8)
    conv = torch.nn.Sequential(ffn[0], torch.nn.ReLU(), ffn[3])  # dropout 0: identity
    assert torch.allclose(ffn(x), conv(x.transpose(1, 2)).transpose(1, 2), atol=1e-6)


def test_attention_is_torchs_multihead_attention_with_its_weights():
    from recpipe.seq.dropout import FastDropout
    from recpipe.seq.sasrec import attend

    m = small_model(heads=2)
    mha, q, x = m.attention_layers[0], torch.randn(3, 6, 8), torch.randn(3, 6, 8)
    want, _ = mha(q, x, x, attn_mask=m.causal[:6, :6], need_weights=False)
    assert torch.allclose(attend(mha, q, x, m.causal[:6, :6], FastDropout(0.5).eval()), want, atol=1e-6)


def test_fast_dropout_keeps_1_minus_p_scaled_and_follows_the_seed():
    from recpipe.seq.dropout import FastDropout

    for p in (0.5, 0.2, 0.9):
        torch.manual_seed(0)
        y = FastDropout(p).train()(torch.ones(400_000))
        kept = y[y != 0]
        assert abs(len(kept) / 400_000 - (1 - p)) < 0.005 and torch.allclose(kept, torch.tensor(1 / (1 - p)))
    torch.manual_seed(1)
    a = FastDropout(0.5)(torch.ones(64))
    torch.manual_seed(1)
    assert torch.equal(a, FastDropout(0.5)(torch.ones(64)))
    assert torch.equal(FastDropout(0.5).eval()(torch.ones(5)), torch.ones(5))


def test_scores_are_the_last_position_against_every_item():
    m = small_model(loss="ce")
    seq = torch.tensor([[0, 2, 3, 4, 5, 6], [0, 0, 0, 0, 1, 12]])
    want = m.encode(seq)[:, -1] @ m.embedding.weight[1:].T
    assert m.scores(seq).shape == (2, 12) and torch.allclose(m.scores(seq), want)
    m.train()  # ce: the target's logit among all items, only at positions with a target
    loss = m.loss(seq, torch.tensor([[0, 3, 4, 5, 6, 7], [0] * 6]), torch.zeros(2, 6, dtype=torch.long))
    h = m.encode(seq)[0, 1:]
    ref = torch.nn.functional.cross_entropy(h @ m.embedding.weight[1:].T, torch.tensor([2, 3, 4, 5, 6]))
    assert torch.isclose(loss, ref)


def test_training_rows_are_the_shifted_training_sequence_and_never_leak(tmp_path):
    from recpipe.data.view import load_view

    data = load_view(loo_split(tmp_path))
    seqs = data.sequences(("train",))
    b = SeqBatches(seqs, data.train, maxlen=4, batch_size=2, seed=0)
    rows = [np.concatenate(x) for x in zip(*b.epoch())]
    users = b.users[np.random.default_rng(0).permutation(len(b.users))]  # the epoch's order
    seen = set()
    for r, u in enumerate(users):
        s = seqs[u].items + 1  # model ids
        seq, pos, neg = rows[0][r], rows[1][r], rows[2][r]
        n = min(len(s) - 1, 4)
        assert list(seq[4 - n:]) == list(s[-n - 1:-1]) and not seq[:4 - n].any()
        assert list(pos[4 - n:]) == list(s[-n:]) and not pos[:4 - n].any()  # the next item
        train_items = set(data.train[u].indices + 1)
        assert all(j not in train_items for j in neg[4 - n:]) and not neg[:4 - n].any()
        seen |= {(u, i - 1) for i in np.concatenate([seq, pos]) if i}
    # the no-leak rule: every item a row holds is a training pair, never valid or test
    assert seen <= set(zip(*data.train.nonzero()))
    held = set(zip(*data.valid.nonzero())) | set(zip(*data.test.nonzero()))
    assert held and not seen & held
    assert len(users) == 6 and data.n_users == 7  # no row for the single-item user
    again = SeqBatches(seqs, data.train, maxlen=4, batch_size=2, seed=0)
    assert all((x == y).all() for x, y in zip(rows, [np.concatenate(x) for x in zip(*again.epoch())]))


def test_validation_reads_the_training_sequence_and_test_adds_the_validation_item(tmp_path):
    from recpipe.data.view import load_view
    from recpipe.seq.run import SeqScorer

    data = load_view(loo_split(tmp_path))
    m = small_model(n_items=data.n_items)
    got = {}

    def spy(seq):  # the model's input, kept
        got["seq"] = seq
        return torch.zeros(len(seq), data.n_items)

    m.scores = spy
    users = np.arange(data.n_users)
    for part, parts in (("valid", ("train",)), ("test", ("train", "valid"))):
        SeqScorer(m, data, part, "cpu")(users)
        want = shift(data.sequences(parts).window(users, 6), data.n_items)
        assert (got["seq"].numpy() == want).all()
    full = data.sequences(("train", "valid", "test"))
    u = int(np.flatnonzero(np.diff(data.test.indptr))[0])
    assert got["seq"][u, -1] == full[u].items[-2] + 1  # test input ends with the validation item


def test_sasrec_params_name_the_bad_key():
    with pytest.raises(ParamError, match="sasrec.model.dim"):
        parse(SASRecParams, {"model": {"dim": 10, "heads": 3}}, prefix="sasrec")
    with pytest.raises(ParamError, match="sasrec.model.loss"):
        parse(SASRecParams, {"model": {"loss": "bpr"}}, prefix="sasrec")
    with pytest.raises(ParamError, match="sasrec.train.select_metric|sasrec.train.epochs"):
        parse(SASRecParams, {"train": {"epochs": 0}}, prefix="sasrec")
    lam = parse(SASRecParams, {}, prefix="sasrec").lr_lambda()
    assert [lam(e) for e in (0, 99.9, 100, 250.5)] == [1, 1, 0.5, 0.25]


def test_sasrec_stage_trains_exports_and_resumes(small_processed, tmp_path, capsys):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sasrec"].update(model={"dim": 16, "maxlen": 10}, threads=1,
                            train={"epochs": 3, "eval_every": 1, "batch_size": 64})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["--params", str(tmp_path / "params.yaml"), "--processed", str(small_processed),
            "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"),
            "--plots", str(tmp_path / "plots")]
    assert stage("sasrec").main(args) == 0
    from recpipe.data.view import load_view

    n_items = load_view(small_processed).n_items
    emb = np.load(tmp_path / "out" / "item_emb.npy", allow_pickle=False)
    assert emb.shape == (n_items + 1, 16) and emb.dtype == np.float32
    full = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {"test/ndcg@10", "valid/ndcg@10", "test/recall@20", "selected_epoch"} <= set(full)
    hp = json.loads((tmp_path / "out" / "hparams.json").read_text())
    assert hp["params"]["model"]["dim"] == 16 and hp["train"]["select_metric"] == "ndcg@10"
    assert (tmp_path / "plots" / "plots" / "metrics" / "valid" / "ndcg@10.tsv").exists()
    capsys.readouterr()
    assert stage("sasrec").main(args) == 0  # finished run: the checkpoint answers at once
    assert "resumed" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == full
    params["sasrec"]["model"]["heads"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert stage("sasrec").main(args) == 2
    assert "sasrec.model.heads" in capsys.readouterr().err


def test_beauty_loo_gives_hellms_training_positions(tmp_path):
    """hellm.md 2.4: Beauty, last 50 items, items[:-2] for training -> 127,598 positions."""
    beauty = shared_path("s3rec_seq", "Beauty.txt")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Beauty.txt").symlink_to(beauty)
    from recpipe.data.view import load_view

    data = load_view(loo_split(tmp_path, raw, user_core=5, item_core=5, loo_max_len=50))
    assert (data.n_users, data.n_items) == (22363, 12101)
    b = SeqBatches(data.sequences(("train",)), data.train, 50, 128, 0, negatives=False)
    assert sum(int((pos != 0).sum()) for _, pos, _ in b.epoch()) == 127598
