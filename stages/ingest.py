"""Stage `ingest`: raw files (dataset.format, dataset.path) -> <out>/*.parquet.

Reads params: dataset, ingest. Writes <out>/{interactions,items,users}.parquet,
<out>/rejects.jsonl, <out>/side/ (release side files) and every count to --metrics (dvc.yaml:
<out>/metrics.json), with `ts_kind` (time, or position for releases without times), which the
split stage reads. Every path is a required argument; dvc.yaml passes them (its `paths`
vars).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section
from recpipe.data.ingest import ingest
from recpipe.data.rejects import IngestError
from recpipe.io import write_json
from recpipe.params import DatasetParams, IngestParams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="folder for the canonical tables")
    ap.add_argument("--metrics", required=True, help="JSON file for every count")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        dataset = section(params, "dataset", DatasetParams)
        cfg = section(params, "ingest", IngestParams)
        print(f"ingest: {dataset.format} from {dataset.path}", flush=True)
        report = ingest(dataset, cfg, Path(args.out))
    except (ParamError, IngestError) as e:
        print(f"ingest failed: {e}", file=sys.stderr)
        return 2
    seconds = report.pop("seconds")  # kept out of the metrics file: it is not reproducible
    write_json(args.metrics, report)
    print(
        f"ingest: {report['interactions']:,} interactions, {report['users']:,} users, "
        f"{report['items']:,} items, {report['rejects']:,} rejected lines "
        f"in {seconds} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("ingest", main))
