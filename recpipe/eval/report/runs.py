"""The runs behind the report: one `Run` per metrics file and seed, found under `metrics/`.

A headline `metrics/<stem>.json` is followed to its full file under `models/`, a mean over
seeds to its per-seed files (the package docstring has the conventions). Runs are grouped by
protocol, then model, since numbers are only comparable inside one protocol.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from recpipe.eval.output import FULL_NAME
from recpipe.eval.significance import over_seeds
from recpipe.io import read_json

NOT_RUNS = {"dataset.json", "ingest.json", "profile.json", "embed.json"}  # data stages
_SEED_SUFFIX = re.compile(r"^(?P<model>.+)-seed(?P<seed>\d+)$")
_PROTOCOL_KEYS = ("preset", "recall_denominator", "ndcg_idcg", "mask_valid_at_test")


@dataclass
class Run:
    """One metrics file: one model, one seed."""

    model: str
    seed: int | None
    path: Path
    values: dict
    per_user: Path | None

    @property
    def protocol(self) -> tuple:
        return tuple(self.values.get(k) for k in _PROTOCOL_KEYS)


def _find_per_user(root: Path, stem: str, values: dict) -> Path | None:
    if values.get("per_user"):
        p = root / values["per_user"]
        return p if p.exists() else None
    models = root / "models"
    found = models.rglob("per_user.parquet") if models.exists() else []
    hits = sorted(q for q in found if q.parent.name == stem)
    if len(hits) > 1:
        raise ValueError(f"report: several per-user tables for metrics/{stem}.json: {hits}; "
                         "name one with the run's `per_user` key")
    return hits[0] if hits else None


def _expand_seeds(root: Path, path: Path, values: dict) -> list[tuple[Path, dict]]:
    """A mean-over-seeds file -> its per-seed (path, values); any other file -> itself."""
    listed = values.get("per_seed")
    if not listed:
        if isinstance(values.get("seeds"), int) and values["seeds"] > 1:
            raise ValueError(f"report: {path} is a mean over {values['seeds']} seeds without a "
                             "`per_seed` list of their files; the report needs each seed's file")
        return [(path, values)]
    if not isinstance(listed, list):  # ValueError: the stage reports those, not a crash
        raise ValueError(f"report: {path}: `per_seed` must be a list of metrics files")  # noqa: TRY004
    out = []
    for rel in listed:
        p = root / rel
        if not p.exists():
            raise ValueError(f"report: {path} averages seeds whose file {p} is missing; "
                             "re-run the stage that wrote it (e.g. dvc repro baselines)")
        seed_values = read_json(p)
        seed_values.setdefault("model", values.get("model") or path.stem)
        out.append((p, seed_values))
    return out


def _full_file(path: Path, values: dict, index: list[Path]) -> Path | None:
    """The full metrics file behind `metrics/<stem>.json`: the file itself when it is full
    (has protocol keys), else the single `models/**/<stem>/metrics.json`; None when absent."""
    if any(k in values for k in _PROTOCOL_KEYS):
        return path
    hits = [q for q in index if q.parent.name == path.stem]
    if len(hits) > 1:
        raise ValueError(f"report: several full metrics files for {path}: "
                         f"{', '.join(map(str, hits))}; remove the stale one")
    return hits[0] if hits else None


def collect_runs(root: Path, skipped: list[str] | None = None) -> list[Run]:
    """Every method run under `root/metrics` (one per seed), sorted by file name.

    A headline file whose full file is missing is left out; `skipped` (if given) gets a line
    saying so.
    """
    runs, seen = [], {}
    models = root / "models"
    index = sorted(models.rglob(FULL_NAME)) if models.exists() else []
    for path in sorted((root / "metrics").glob("*.json")):
        values = read_json(path)
        if path.name in NOT_RUNS or not isinstance(values, dict):
            continue
        if not any(k.startswith(("test/", "valid/")) for k in values):
            continue
        full = _full_file(path, values, index)
        if full is None:
            if skipped is not None:
                skipped.append(f"{path.relative_to(root).as_posix()}: no full metrics file "
                               f"models/**/{path.stem}/{FULL_NAME}; left out (re-run its stage)")
            continue
        if full != path:
            values = read_json(full)
        m = _SEED_SUFFIX.match(path.stem)
        for src, vals in _expand_seeds(root, full, values):
            model = vals.get("model") or (m["model"] if m else path.stem)
            seed = vals.get("seed", int(m["seed"]) if m else None)
            run = Run(str(model), seed, src, vals, _find_per_user(root, path.stem, vals))
            key = (run.protocol, run.model, run.seed)
            if key in seen:
                raise ValueError(f"report: {seen[key]} and {src} both hold model {run.model!r} "
                                 f"seed {run.seed} under the same protocol; remove one")
            seen[key] = src
            runs.append(run)
    return runs


def group_runs(runs: list[Run], baselines: list[str]) -> dict[tuple, dict[str, list[Run]]]:
    """protocol -> model -> seeds; baselines first (in the configured order), then by name."""
    tables: dict[tuple, dict[str, list[Run]]] = {}
    for r in runs:
        tables.setdefault(r.protocol, {}).setdefault(r.model, []).append(r)
    order = {b: i for i, b in enumerate(baselines)}

    def rank(model: str):
        return (0, order[model], "") if model in order else (1, 0, model)

    ordered = sorted(tables.items(), key=lambda x: str(x[0]))
    return {p: {m: t[m] for m in sorted(t, key=rank)} for p, t in ordered}


def _cell(seeds: list[Run], key: str) -> tuple[float, float]:
    """Mean and sample std of `key` over a model's seeds; NaNs when no seed has it."""
    vals = [r.values[key] for r in seeds if isinstance(r.values.get(key), (int, float))]
    return over_seeds(vals) if vals else (math.nan, math.nan)
