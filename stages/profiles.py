"""Stage `profile`: <processed> -> RLMRec item and user profiles in <out>/.

Reads params: profile, seed, dataset.format (for `profile.kind: auto`). Writes
<out>/{item,user}_profiles.parquet, <out>/metrics.json (every count) and --metrics (the
declared few: ok and failed profiles, users and items together, and status); appends every
finished profile to --cache (a file in a DVC `persist: true` output), so `dvc repro` after a
crash or Ctrl-C regenerates only what is missing.

    python stages/profiles.py [--params FILE] --processed DIR --out DIR --cache FILE --metrics FILE

Every path is a required argument; dvc.yaml passes them (its `paths` vars).

The file is profiles.py, not profile.py: a script's folder comes first on sys.path, and a
stages/profile.py would shadow the standard library's `profile` (imported by cProfile).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# this checkout's recpipe before any installed one: DVC runs a queued experiment in a copy
# of the repo, and the copy must import the code it hashed as a dependency
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recpipe.config import ParamError, load_params, section
from recpipe.io import write_json
from recpipe.profiling.backends.openai import EndpointUnreachable
from recpipe.profiling.profile import ProfileParams, profile
from recpipe.train.seeds import top_seed


def status(m: dict) -> str:
    """`ok` (some profile written), `skipped: no text` (data without titles, descriptions or
    reviews, e.g. the RLMRec release: nothing to prompt with) or `failed` (every completion)."""
    if m["items_ok"] + m["users_ok"]:
        return "ok"
    return "failed" if m["items_failed"] + m["users_failed"] else "skipped: no text"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", required=True, help="the split stage's folder")
    ap.add_argument("--out", required=True, help="folder for the profile tables")
    ap.add_argument("--cache", required=True, help="JSON-lines cache of finished profiles")
    ap.add_argument("--metrics", required=True, help="the headline counts")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        cfg = section(params, "profile", ProfileParams)
        seed = top_seed(params)
        fmt = (params.get("dataset") or {}).get("format")
        model = cfg.openai.model if cfg.backend == "openai" else cfg.model
        print(f"profile: backend={cfg.backend} model={model if cfg.backend != 'template' else '-'}"
              f" kind={cfg.kind}", flush=True)
        metrics = profile(Path(args.processed), Path(args.out), Path(args.cache), cfg, seed, fmt)
    except EndpointUnreachable as e:  # the circuit breaker: the cache keeps what finished
        print(f"profile failed: {e}. Every profile finished so far is in {args.cache}; the "
              f"rerun resumes from there", file=sys.stderr)
        return 2
    except (ParamError, ValueError, FileNotFoundError) as e:
        print(f"profile failed: {e}", file=sys.stderr)
        return 2
    metrics["status"] = status(metrics)
    write_json(Path(args.out) / "metrics.json", metrics)  # every count; the declared few:
    write_json(args.metrics, {"ok": metrics["users_ok"] + metrics["items_ok"],
                              "failed": metrics["users_failed"] + metrics["items_failed"],
                              "status": metrics["status"]})
    if metrics["items_ok"] + metrics["users_ok"] == 0:
        print("profile: warning: no profile was written (no titles, descriptions or reviews in "
              f"the data, or every completion failed); see {Path(args.out) / 'metrics.json'}",
              file=sys.stderr)
    print(
        f"profile: prompts {metrics['kind']} ({metrics['template_version']}); items "
        f"{metrics['items_ok']:,} ok / {metrics['items_empty']:,} empty / "
        f"{metrics['items_failed']:,} failed; users {metrics['users_ok']:,} ok / "
        f"{metrics['users_empty']:,} empty / {metrics['users_failed']:,} failed; "
        f"{metrics['items_generated'] + metrics['users_generated']:,} generated, "
        f"{metrics['items_cached'] + metrics['users_cached']:,} from cache, "
        f"{metrics['retries']:,} retries"
    )
    return 0


if __name__ == "__main__":
    from recpipe.resources import report

    sys.exit(report("profiles", main))
