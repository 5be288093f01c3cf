"""Every paper preset in one index: what it sets, from which paper, and where each value comes from.

Two kinds of entries:
- `PRESETS`: data + evaluation settings of each paper, as `dvc exp run -S` overrides

      dvc exp run $(recpipe preset hellm)              # or copy the -S flags it prints
      recpipe preset                                   # this index: papers, sources, value tables

- `TABLES`: the per-model value tables that the stages apply themselves (RLMRec's per-backbone
  hyperparameters, the evaluation presets, the training defaults), with the file that holds
  each table and the reference files its values were read from.

Method specs: evaluation.md section 4, rlmrec.md 7 and 9.3, hellm.md 2.4, cllm4rec.md 2, hum.md 6
(../shared/methods/). Later issues add each paper's method keys to the same entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    paper: str  # the paper whose protocol this is
    source: str  # where the values come from (spec section, reference repository and file)
    flags: dict = field(default_factory=dict)  # params.yaml key -> value


RLMREC = "Ren et al., Representation Learning with Large Language Models for Recommendation, WWW 2024"

PRESETS: dict[str, Preset] = {
    # RLMRec's recipe on raw Amazon/Yelp reviews (its release is already processed: see
    # `rlmrec-release`): drop ratings < 3, sample 20 % of users (25 % for Yelp/Steam),
    # 10-core, random 3:1:1 per interaction, redrawn until every user/item has a train pair
    "rlmrec": Preset(RLMREC, "rlmrec.md 9.3 (paper sec. 4.1, data preprocessing); evaluation.md 4-5.2", {
        "split.protocol": "random",
        "split.ratios": [0.6, 0.2, 0.2],
        "split.min_rating": 3,
        "split.sample_users": 0.2,
        "split.user_core": 10,
        "split.item_core": 10,
        "split.guarantee": "redraw",
        "eval.preset": "rlmrec",
        # RLMRec stops on patience alone (params.yaml's graph.train.min_epochs is the project's)
        "graph.train.min_epochs": 0,
    }),
    # the RLMRec release folder (trn_mat.pkl, ...), keeping its own split, trained as the
    # reference: parity mode runs the official per-model values (graph.overrides are clean-only)
    "rlmrec-release": Preset(RLMREC, "HKUDS/RLMRec data/{amazon,yelp,steam}/*.pkl (the released split); "
                             "graph values: TABLES['graph']", {
                                 "dataset.format": "rlmrec", "split.protocol": "rlmrec",
                                 "eval.preset": "rlmrec", "graph.mode": "parity",
                                 "graph.train.min_epochs": 0}),
    # HeLLM / SASRec / E4SRec: 5-core, sequences truncated to the last 50, leave-one-out
    "hellm": Preset("HeLLM (2025): hypergraph-enhanced LLM recommendation; Xu107/HeLLM",
                    "hellm.md 2.4; evaluation.md 4 (LOO, max_len 50) and 5.1", {
                        "split.protocol": "loo",
                        "split.loo_max_len": 50,
                        "split.user_core": 5,
                        "split.item_core": 5,
                        "eval.preset": "hellm",
                    }),
    # CLLM4Rec: per-user 8:1:1 holdout (the reference's ratios are unpublished: project choice)
    "cllm4rec": Preset("Zhu et al., Collaborative Large Language Model for Recommender Systems, WWW 2024; "
                       "yaochenzhu/LLM4Rec", "cllm4rec.md 2; evaluation.md 4 (per-user ratios: a project choice)", {
                           "split.protocol": "user_ratio",
                           "split.ratios": [0.8, 0.1, 0.1],
                           "split.user_core": 5,
                           "split.item_core": 5,
                           "eval.preset": "cllm4rec",
                       }),
    # HUM: global temporal split; its k-core call is commented out in the reference. The
    # m_IOATBC thresholds are dates; on other data use quantiles (recorded in dataset.json)
    "hum": Preset("HUM, RecSys 2025: one LLM for cross-domain histories; Honghui-BAO/HUM",
                  "hum.md 6; evaluation.md 4 (global temporal) and 5.7", {
                      "split.protocol": "temporal",
                      "split.temporal_valid": 0.8,
                      "split.temporal_test": 0.9,
                      "split.user_core": 0,
                      "split.item_core": 0,
                      "eval.preset": "hum",
                      # one sample per held-out interaction, for every model (hum.md 7)
                      "eval.average": "samples",
                      # the single-domain rows of the seesaw comparison (hum.md 7)
                      "baselines.single_domain": ["itemknn", "bprmf", "sasrec", "lightgcn"],
                  }),
}

# per-model value tables: (the file holding the values, the reference files they come from)
TABLES: dict[str, tuple[str, str]] = {
    "graph": ("recpipe/graph/presets.py (PAPER)",
              "HKUDS/RLMRec encoder/config/modelconf/<model>{,_plus,_gene}.yml at commit "
              "22413752, every value pinned by tests/fixtures/rlmrec_official_configs.json"),
    "train": ("recpipe/train/loop.py (TrainConfig defaults)",
              "the `optimizer`/`train`/`test` blocks shared by RLMRec's 18 modelconf files: Adam lr 1e-3, "
              "batch 4096, at most 3000 epochs, validate every 3 (test_step), patience 5"),
    "eval": ("recpipe/eval/protocol.py (PRESETS)",
             "evaluation.md 5: HKUDS/RLMRec encoder/trainer/metrics.py, yaochenzhu/LLM4Rec, Xu107/HeLLM, "
             "Xu107/MMHCL, Honghui-BAO/HUM metrics.py"),
    "baselines.bprmf": ("recpipe/baselines/bprmf.py (TRAIN_DEFAULTS, BPRMFParams)",
                        "Rendle et al., UAI 2009 (init std 0.1); RecBole bpr.py"),
}


def flags(name: str) -> list[str]:
    """The `-S key=value` arguments of preset `name`."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    out = []
    for key, value in PRESETS[name].flags.items():
        text = "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, list) else str(value)
        out += ["-S", f"{key}={text}"]
    return out


def index() -> str:
    """The index as text: each preset's paper, source and flags, then the value tables."""
    lines = []
    for name, p in PRESETS.items():
        lines += [f"{name}: {p.paper}", f"    source: {p.source}", f"    flags:  {' '.join(flags(name))}"]
    lines.append("value tables applied by the stages:")
    for name, (where, source) in TABLES.items():
        lines += [f"{name}: {where}", f"    source: {source}"]
    return "\n".join(lines)
