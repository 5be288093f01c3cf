"""Stage `embed`: profiles and item texts -> float32 embedding matrices.

Reads params: embed. Reads <processed>/ (ids, items) and <profiles>/
{user,item}_profiles.parquet (the `profile` stage). Writes <out>/
{user_profile,item_profile,item_text[,item_image]}.npy + index.json + metrics.json (rows,
dim, encoded vs cached texts, failed profiles, missing images; no timings, so reruns compare
equal; --full moves it), the text-hash cache <cache>/ (persistent: unchanged texts are never
re-encoded) and --metrics, the keys declared as DVC metrics: `dim` and `status` (`ok`;
`skipped: no text` when the data has no text at all, e.g. the RLMRec release: no matrix is
written, and the stage still succeeds with every output in place). Every path is a required
argument (but --full); dvc.yaml passes them (its `paths` vars).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section
from recpipe.embedding.embed import EmbedParams, embed_all
from recpipe.embedding.text import TextEncoder
from recpipe.io import write_json

HEADLINE = ("dim", "status")  # written to --metrics (declared); the rest: <out>/metrics.json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--profiles", required=True, help="the profile stage's folder")
    ap.add_argument("--out", required=True, help="folder for the matrices")
    ap.add_argument("--cache", required=True, help="the text-hash cache folder")
    ap.add_argument("--full", default=None, help="every count (default: <out>/metrics.json)")
    ap.add_argument("--metrics", required=True, help="the headline keys")
    args = ap.parse_args(argv)
    # the default model is bundled; never let a missing file turn into a hub download attempt
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    try:
        cfg = section(load_params(args.params), "embed", EmbedParams)
        enc = TextEncoder(cfg.model, batch_size=cfg.batch_size, normalize=cfg.normalize,
                          device=cfg.device, fp16=cfg.fp16, max_seq_length=cfg.max_seq_length,
                          progress=True)
        print(f"embed: model={cfg.model} device={cfg.device} normalize={cfg.normalize}", flush=True)
        if cfg.fp16 and not enc.fp16:
            print("embed: fp16 requested but the device is CPU; encoding in fp32", flush=True)
        report = embed_all(Path(args.processed), Path(args.out), enc, Path(args.cache),
                           profiles=Path(args.profiles), image_features=cfg.image_features)
    except (ParamError, FileNotFoundError, ValueError) as e:
        print(f"embed failed: {e}", file=sys.stderr)
        return 2
    write_json(args.full or Path(args.out) / "metrics.json", report)
    write_json(args.metrics, {k: report[k] for k in HEADLINE if k in report})
    enc_n = sum(v for k, v in report.items() if k.endswith("/encoded"))
    hit_n = sum(v for k, v in report.items() if k.endswith("/cached"))
    def failed(kind: str) -> str:
        if report.get(f"{kind}_profile/skipped"):
            return "all (no matrix)"
        return f"{report[f'{kind}_profile/failed'] + report[f'{kind}_profile/absent']:,}"

    print(f"embed: {report['users']:,} users, {report['items']:,} items, dim {report['dim']}; "
          f"{enc_n:,} texts encoded, {hit_n:,} from cache; failed profiles "
          f"user {failed('user')} / item {failed('item')}"
          + (f"; images missing {report['item_image/missing']:,}" if "item_image/missing" in report else "")
          + f" in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("embed", main))
