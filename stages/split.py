"""Stage `split`: <interim> -> cleaned, split, integer-indexed tables in <out>.

Reads params: split, seed. Writes <out>/ with <out>/metrics.json (every dataset statistic, per
domain, with the ingest report's reject counts merged in; --full moves it) and --metrics, the
few counts declared as DVC metrics (`HEADLINE`). Every path is a required argument (but
--full); dvc.yaml passes them (its `paths` vars).

The ingest report's `ts_kind` says whether `ts` is a time or only a position (seqtxt, cdsr);
with positions, `split.protocol=temporal` splits each user by order (recpipe/data/split.py),
recorded as `split/temporal_by` in <out>/metrics.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section
from recpipe.data.ingest import TS_KINDS
from recpipe.data.processed import build
from recpipe.data.rejects import IngestError
from recpipe.io import read_json, write_json
from recpipe.params import SplitParams
from recpipe.train.seeds import top_seed

# declared in metrics/dataset.json: the split's size (the rest, ingest's rejects included, is
# in <out>/metrics.json; more columns would make `dvc metrics show` too wide to read)
HEADLINE = ("users", "items", "train", "valid", "test")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--interim", required=True, help="the ingest stage's folder")
    ap.add_argument("--out", required=True, help="folder for the split tables")
    ap.add_argument("--ingest-report", required=True,
                    help="the ingest stage's counts (merged in when the file exists)")
    ap.add_argument("--full", default=None,
                    help="every statistic (default: <out>/metrics.json)")
    ap.add_argument("--metrics", required=True, help="the headline counts")
    args = ap.parse_args(argv)
    ingest = Path(args.ingest_report)
    rep = read_json(ingest) if ingest.exists() else {}
    try:
        params = load_params(args.params)
        cfg = section(params, "split", SplitParams)
        seed = top_seed(params)
        ts_kind = rep.get("ts_kind", "time")
        if ts_kind not in TS_KINDS:
            raise IngestError(f"{ingest}: ts_kind={ts_kind!r} is not one of {TS_KINDS}")
        print(f"split: protocol={cfg.protocol} seed={seed}", flush=True)
        report = build(Path(args.interim), Path(args.out), cfg, seed, ts_kind)
    except (ParamError, IngestError) as e:
        print(f"split failed: {e}", file=sys.stderr)
        return 2
    report["ts_kind"] = ts_kind
    if ingest.exists():
        report["rejects"] = rep.get("rejects", 0)
        report.update({k: v for k, v in rep.items() if k.startswith("rejects/")})
    write_json(args.full or Path(args.out) / "metrics.json", report)
    write_json(args.metrics, {k: report[k] for k in HEADLINE if k in report})
    print(
        f"split: {report['users']:,} users, {report['items']:,} items, train/valid/test = "
        f"{report['train']:,}/{report['valid']:,}/{report['test']:,}, density {report['density']:.5f}"
    )
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("split", main))
