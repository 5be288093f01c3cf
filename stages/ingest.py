"""Stage `ingest`: raw files (dataset.format, dataset.path) -> data/interim/*.parquet.

Reads params: dataset, ingest. Writes data/interim/{interactions,items,users}.parquet,
data/interim/rejects.jsonl, data/interim/side/ (release side files) and metrics/ingest.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recpipe.config import ParamError, load_params, section
from recpipe.data.ingest import ingest
from recpipe.data.rejects import IngestError
from recpipe.io import write_json
from recpipe.params import DatasetParams, IngestParams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/interim")
    ap.add_argument("--metrics", default="metrics/ingest.json")
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
    sys.exit(main())
