"""Several seeds inside one DVC stage: run each, keep per-seed results, write mean ± std.

One `dvc exp` per seed would overwrite the same `metrics/<model>.json`, so a training stage
runs its seeds itself. It reads `<section>.seeds` (a list of distinct non-negative ints; absent
or `[]` = `[<top-level seed>]`) and writes, for a model whose out folder is `<out>`:

    one seed:
        <out>/metrics.json           that seed's full flat metrics, with `seed` and `per_user`
        <out>/per_user.parquet       its per-user table
    several seeds:
        <out>/seed<k>/metrics.json   seed k's full flat metrics, with `seed` and `per_user`
        <out>/seed<k>/per_user.parquet
        <out>/metrics.json           the mean over seeds under the usual keys
                                     (`test/recall@20`, ...), `<key>_std` (sample std, ddof=1)
                                     right after each, `seeds` (count), `seed_list` and
                                     `per_seed` (the per-seed metrics.json paths)
    and in both cases
        metrics/<model>.json         the headline keys of <out>/metrics.json, declared as DVC
                                     metrics (`recpipe.eval.output.headline`)

Every file but the headline sits inside the stage's declared out folder, so DVC caches them.
The report (`recpipe.eval.report`) reads `<out>/metrics.json`, follows `per_seed` and tests on
per-user values averaged over seeds.

Aggregation rules (`aggregate`): a key counts only if every seed has it. Floats get mean and
`_std` (a deterministic model gets std 0.0, so every model shows the same keys); integers
equal across seeds stay as they are (`test/units`), varying ones (`selected_epoch`) get mean
and `_std`. Other values are kept when all seeds agree (`preset`, `model`) and dropped when
they differ. `seed` and `per_user` describe one seed and never reach the aggregate.

API (everything a stage needs; see stages/baselines.py for a full use):

    seeds = parse_seeds(p.seeds, top_seed(params), "graph.seeds")  # a validated list
    def fit(s: Seed):                            # s.value: the seed; s.under(root): its folder
        ...train with s.value, log curves to s.under(plots_dir)...
        return {"valid": res_v, "test": res_t}, {"selected_epoch": epoch}
    m = run_seeds(seeds, fit, eval_cfg, "metrics/graph.json", out_dir, model="lightgcn-con")
    # m: the full dict (<out_dir>/metrics.json); metrics/graph.json: its headline
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from recpipe.eval.output import FULL_NAME, STD, write_headline, write_results
from recpipe.eval.significance import over_seeds
from recpipe.io import write_json
from recpipe.train.seeds import Seed, _is_int, parse_seeds  # noqa: F401  (re-exported)

PER_SEED_ONLY = ("seed", "per_user")  # facts about one seed, never aggregated


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def aggregate(per_seed: list[dict], seeds: list[int] | None = None,
              paths: list[str] | None = None) -> dict:
    """Mean ± sample std of several seeds' flat metrics dicts (rules: module docstring).

    Key order follows the first seed, each `<key>_std` right after its mean, so
    `dvc metrics show` puts them side by side; `seeds`, `seed_list`, `per_seed` take `seed`'s
    place. Values are rounded to 6 digits like `metrics_dict`'s.
    """
    if len(per_seed) < 2:
        raise ValueError(f"aggregate: needs at least two seeds, got {len(per_seed)}")
    book = {"seeds": len(per_seed),
            "seed_list": list(seeds) if seeds is not None else [d.get("seed") for d in per_seed]}
    if paths is not None:
        book["per_seed"] = [str(p) for p in paths]
    first = per_seed[0]
    out: dict = {} if "seed" in first else dict(book)
    for key, v0 in first.items():
        if key == "seed":  # the seed list goes where the single seed was
            out.update(book)
            continue
        if key in PER_SEED_ONLY or any(key not in d for d in per_seed):
            continue
        vals = [d[key] for d in per_seed]
        if all(_number(v) for v in vals):
            if all(_is_int(v) for v in vals) and len(set(vals)) == 1:
                out[key] = v0  # a count shared by every seed (units), not a statistic
                continue
            mean, std = over_seeds(vals)
            out[key] = round(mean, 6)
            out[key + STD] = round(std, 6)
        elif all(v == v0 for v in vals):
            out[key] = v0
    return out


def run_seeds(seeds: list[int], fit: Callable[[Seed], tuple], cfg, metrics_path: str | Path,
              out_dir: str | Path, **extra) -> dict:
    """Run `fit` once per seed, write the full files and the headline; return the full dict.

    fit(seed: Seed) -> ({part: EvalResult}, {extra key: value}) or just {part: EvalResult},
    or None on a launcher's process other than 0 (then nothing is written and {} returned);
    the stage trains with `seed.value` and puts its own seed-specific files (curves,
    checkpoints) under `seed.under(folder)`. `cfg` is the EvalConfig; `extra` (e.g.
    model="bprmf") goes into every metrics file. The full metrics go to
    `<out_dir>/metrics.json` (and `<out_dir>/seed<k>/metrics.json`), the headline to
    `metrics_path` (layout: module docstring). Paths are written as given, so pass them
    relative to the project root (the stage's working directory).
    """
    if not seeds:
        raise ValueError("run_seeds: no seeds (parse_seeds turns [] into [seed])")
    multi = len(seeds) > 1
    out_dir = Path(out_dir)
    per_seed, paths = [], []
    for value in seeds:
        s = Seed(value, multi)
        got = fit(s)
        if got is None:  # a launcher's process other than 0 trained alongside; 0 writes
            continue
        results, more = got if isinstance(got, tuple) else (got, {})
        folder = s.under(out_dir)
        per_user = folder / "per_user.parquet"
        m = write_results(results, cfg, folder / FULL_NAME, per_user, **extra, seed=value,
                          per_user=per_user.as_posix(), **more)
        if not multi:
            write_headline(metrics_path, m)
            return m
        per_seed.append(m)
        paths.append((folder / FULL_NAME).as_posix())
    if not per_seed:
        return {}
    agg = aggregate(per_seed, seeds, paths)
    write_json(out_dir / FULL_NAME, agg)
    write_headline(metrics_path, agg)
    return agg
