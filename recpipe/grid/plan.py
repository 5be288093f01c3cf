"""The leaderboard grid: datasets x methods x seeds, each cell one DVC experiment.

A cell is `dvc exp run --queue -n <dataset>-<method>-s<seed> <stage> -S ...`: the method's
stage (and whatever it needs upstream, which DVC reruns or restores) on the dataset's flags.
The seed is the model's (`<section>.seeds=[s]`); the top-level `seed`, which draws the data
and the split, stays as it is, so every cell of a dataset shares one split and one evaluator:
the grid sets no paper preset, so one protocol ranks every row (README "The leaderboard
grid"). A cell that does not apply is planned as such, with its reason:

- text-based methods (RLMRec's con/gen alignment) on data without text;
- HUM on data without item titles or with a single domain;
- any cell of a dataset whose files are absent under the data root.

    cells = plan(["sample"], ["pop", "lightgcn-con", "hum"], [1, 2, 3], data_root)
    cell.name, cell.argv()   # the exp name and the `dvc exp run --queue` command
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recpipe.baselines import MODELS as CLASSIC  # names only here: no torch at import
from recpipe.graph import BACKBONES  # names only: the backbones import lazily


@dataclass(frozen=True)
class Dataset:
    flags: tuple[str, ...]  # -S values; {root} is the data root
    path: str | None  # a folder under the data root that must exist (None: generated here)
    text: bool  # reviews or item texts to profile (RLMRec's con/gen)
    titles: bool  # item titles (HUM)
    domains: int  # categories in the data (HUM needs several)
    about: str


DATASETS: dict[str, Dataset] = {
    "sample": Dataset((), None, True, True, 3,
                      "the embedded dataset (`sample` stage): 3 Amazon-like domains with texts"),
    "beauty": Dataset(("dataset.format=seqtxt", "dataset.path={root}/s3rec_seq",
                       "ingest.categories=[Beauty]", "split.protocol=loo"),
                      "s3rec_seq", False, False, 1, "S3Rec's Amazon Beauty sequences, leave-one-out"),
    "giftcards": Dataset(("dataset.format=amazon2018", "dataset.path={root}/amazon2018_gift_cards"),
                         "amazon2018_gift_cards", True, True, 1,
                         "Amazon 2018 Gift Cards (5-core reviews and meta)"),
    "amazon-book": Dataset(("dataset.format=rlmrec", "dataset.path={root}/rlmrec/amazon",
                            "split.protocol=rlmrec"), "rlmrec/amazon", False, False, 1,
                           "RLMRec's released Amazon-book split (interactions only)"),
    "amazon2023": Dataset(("dataset.format=amazon2023",
                           "dataset.path={root}/amazon2023_multicat_sample",
                           "split.protocol=temporal"), "amazon2023_multicat_sample", True, True, 23,
                          "Amazon 2023, 23 categories as domains, global temporal split"),
}


@dataclass(frozen=True)
class Method:
    stage: str  # the dvc.yaml stage the cell runs
    metrics: str  # its headline file
    section: str  # the params section whose `seeds` the cell sets
    full: str  # its full metrics file (DVC-cached, read from the experiment by the collector)
    flags: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # "text" | "titles" | "domains"
    setup: tuple[str, ...] = ()  # params shown as the cell's backbone / profile


# the params a method's row names as its setup: the backbone, and for HUM its scoring
SETUP = {"hellm": ("hellm.model",), "hum": ("hum.model", "hum.score", "hum.center")}


def _methods() -> dict[str, Method]:
    out = {m: Method(f"baselines@{m}", f"metrics/{m}.json", "baselines",
                     f"models/baselines/{m}/metrics.json") for m in CLASSIC}
    profile = ("profile.backend", "profile.model", "embed.model")
    for b in BACKBONES:
        for a in ("none", "con", "gen"):
            out[f"{b}-{a}"] = Method("graph", "metrics/graph.json", "graph", "models/graph/metrics.json",
                                     (f"graph.model={b}", f"graph.align={a}"),
                                     () if a == "none" else ("text",), () if a == "none" else profile)
    for m in ("mmhcl", "sasrec", "hellm", "hum"):
        out[m] = Method(m, f"metrics/{m}.json", m, f"models/{m}/metrics.json",
                        needs=("titles", "domains") if m == "hum" else (),
                        setup=SETUP.get(m, ()))
    out["cllm4rec"] = Method("cllm4rec_finetune", "metrics/cllm4rec.json", "cllm4rec",
                             "models/cllm4rec/metrics.json", setup=("cllm4rec.model",))
    return out


METHODS: dict[str, Method] = _methods()
BASELINES = (*CLASSIC, *(f"{b}-none" for b in BACKBONES), "mmhcl", "sasrec")
REASONS = {"text": "no text to profile", "titles": "no item titles", "domains": "a single domain"}


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    seed: int
    flags: tuple[str, ...]  # every -S value, the dataset's first
    na: str = ""  # why the cell does not apply ("" = it runs)

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.method}-s{self.seed}"

    def argv(self) -> list[str]:
        """The `dvc exp run --queue` command that queues this cell."""
        out = ["dvc", "exp", "run", "--queue", "-n", self.name, METHODS[self.method].stage]
        for f in self.flags:
            out += ["-S", f]
        return out


def plan(datasets: list[str], methods: list[str], seeds: list[int], root: str | Path,
         extra: tuple[str, ...] = ()) -> list[Cell]:
    """Every (dataset, method, seed) cell in that order; `extra`: -S values for every cell
    (a smaller scale, a device). Raises ValueError naming an unknown dataset or method."""
    for kind, names, known in (("dataset", datasets, DATASETS), ("method", methods, METHODS)):
        if bad := [n for n in names if n not in known]:
            raise ValueError(f"unknown {kind}(s) {', '.join(bad)}; choose from {', '.join(known)}")
    root = Path(root)
    cells = []
    for dn in datasets:
        d = DATASETS[dn]
        have = {"text": d.text, "titles": d.titles, "domains": d.domains > 1}
        absent = d.path is not None and not (root / d.path).exists()
        for mn in methods:
            m = METHODS[mn]
            na = next((REASONS[n] for n in m.needs if not have[n]), "")
            if absent:
                na = f"data absent: {root / d.path}"
            for s in seeds:
                flags = (*(f.format(root=root) for f in d.flags), *m.flags,
                         f"{m.section}.seeds=[{s}]", *extra)
                cells.append(Cell(dn, mn, s, flags, na))
    return cells
