"""Stage `sample`: write the embedded default dataset (synthetic, raw Amazon 2018 format).

Reads the `sample` section of params.yaml plus the shared top-level `seed`, then writes
`<Cat>_5.json.gz`, `meta_<Cat>.json.gz`, README.md and generator.json into `sample.out`
(default data/raw/sample/), where the `ingest` stage reads them with the amazon2018 reader.

    python stages/sample.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section
from recpipe.data.sample import SampleConfig, generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        cfg = section(params, "sample", SampleConfig)
        if cfg.seed is None:  # the shared seed, unless the section pins its own
            from recpipe.train.seeds import top_seed

            cfg = dataclasses.replace(cfg, seed=top_seed(params))
        t0 = time.perf_counter()
        counts = generate(cfg, cfg.out)
    except ParamError as e:
        print(f"sample: bad parameter: {e}", file=sys.stderr)
        return 2
    except FileExistsError as e:
        print(f"sample: {e}", file=sys.stderr)
        return 2
    print(
        f"sample: wrote {counts['reviews']:,} reviews ({counts['users']:,} users, "
        f"{counts['items']:,} items, {len(cfg.domains)} domains, seed {cfg.seed}) "
        f"to {cfg.out} in {time.perf_counter() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("sample", main))
