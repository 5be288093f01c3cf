"""Embedding throughput: the embed stage's encoding path vs a bare SentenceTransformer.encode.

Texts: the HeLLM item texts of a processed folder (default `data/processed`, the synthetic
sample after `dvc repro`), repeated to `--n` texts with a counter appended so every text is
distinct (otherwise the stage's de-duplication would make it look faster than it is). Both
sides use the same loaded all-MiniLM-L6-v2, batch size and normalisation. The stage path is
`encode_cached` on a cold cache: hash every text, encode the missing ones, write the cache
Parquet. Runs alternate (bare, stage, stage, bare, ...) and the best of `--repeats` is kept,
which damps the noise of a shared machine. Then the cache-hit rerun: load the cache file and
serve all texts from it without touching the model.

    python benchmarks/bench_embed.py                  # 5,000 texts
    python benchmarks/bench_embed.py --n 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processed", default=str(ROOT / "data" / "processed"))
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import numpy as np
    import torch

    from recpipe.embedding.cache import EmbeddingCache, encode_cached
    from recpipe.embedding.embed import item_texts
    from recpipe.embedding.text import TextEncoder

    processed = Path(args.processed)
    if not (processed / "items.parquet").exists():
        print(f"{processed}/items.parquet missing: run `dvc repro split` first", file=sys.stderr)
        return 2
    base = item_texts(processed)
    texts = [f"{base[i % len(base)]} ({i})" for i in range(args.n)]
    enc = TextEncoder(batch_size=args.batch_size, normalize=True, device=args.device)
    st = enc.model
    st.encode(texts[:64], batch_size=args.batch_size)  # warm-up: first-call allocations
    print(f"{args.n:,} texts from {len(base):,} items, mean {np.mean([len(t) for t in texts]):.0f} chars, "
          f"device {enc.device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}")

    def bare() -> float:
        t = time.perf_counter()
        st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return time.perf_counter() - t

    def stage(cache_dir: Path) -> float:
        t = time.perf_counter()
        cache = EmbeddingCache(cache_dir, enc.signature())
        _, counts = encode_cached(enc, cache, texts)
        cache.save()
        assert counts["encoded"] == args.n
        return time.perf_counter() - t

    times = {"bare": [], "stage": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("bare", "stage") if r % 2 == 0 else ("stage", "bare")
            for name in order:
                s = bare() if name == "bare" else stage(Path(tmp) / f"cold{r}")
                times[name].append(s)
                print(f"  run {r} {name:5s}: {s:7.2f} s  {args.n / s:8.1f} texts/s", flush=True)
        t = time.perf_counter()
        cache = EmbeddingCache(Path(tmp) / "cold0", enc.signature())
        _, counts = encode_cached(enc, cache, texts)
        hit = time.perf_counter() - t
        assert counts["encoded"] == 0
    b, s = min(times["bare"]), min(times["stage"])
    print(f"bare SentenceTransformer.encode: {args.n / b:8.1f} texts/s (best of {args.repeats})")
    print(f"stage path (hash+encode+cache):  {args.n / s:8.1f} texts/s (best of {args.repeats})")
    print(f"ratio stage / bare: {b / s:.3f} (target >= 0.9)")
    print(f"cache-hit rerun of {args.n:,} texts: {hit:.3f} s ({args.n / hit:,.0f} texts/s), 0 encoded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
