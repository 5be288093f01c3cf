"""JSON lines to a typed frame: polars' NDJSON reader first, per-line orjson only on failure.

The fast path parses a whole chunk or block against an explicit schema (~10x `json.loads`);
the slow path exists to find and reject exactly the bad lines, with their line numbers.
"""

from __future__ import annotations

import io
from typing import Iterable, Iterator

import polars as pl


_PY_TYPES = {
    pl.String: (str,),
    pl.Float64: (int, float),
    pl.Float32: (int, float),
    pl.Int64: (int,),
    pl.Int32: (int,),
    pl.Boolean: (bool,),
}


def _value_ok(v, dtype) -> bool:
    if v is None:
        return True
    if isinstance(dtype, pl.List):
        return isinstance(v, list) and all(_value_ok(x, dtype.inner) for x in v)
    if dtype == pl.String:
        # polars' fast path stores any value of a String field as text (objects and arrays as
        # their JSON), so the slow path must accept the same
        return True
    ok = _PY_TYPES.get(dtype)
    if ok is None:
        return True
    if isinstance(v, bool) and dtype != pl.Boolean:
        return False
    return isinstance(v, ok)


def parse_json_chunk(
    nums: list[int], lines: list[bytes], schema: dict, file: str, rejects
) -> pl.DataFrame:
    """Parse JSON lines into a frame with `schema` plus `__line`; bad lines go to `rejects`."""
    try:
        df = pl.read_ndjson(io.BytesIO(b"".join(_terminated(lines))), schema=schema)
        if df.height == len(lines):
            return df.with_columns(pl.Series("__line", nums, dtype=pl.Int64))
    except Exception:  # noqa: BLE001 - any polars parse error sends us to the slow path
        pass
    import orjson

    good_nums, good = [], []
    for n, line in zip(nums, lines):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            rejects.add(file, n, f"malformed JSON: {e}", text=line)
            continue
        if not isinstance(obj, dict):
            rejects.add(file, n, f"expected a JSON object, got {type(obj).__name__}", text=line)
            continue
        bad = next((k for k, t in schema.items() if not _value_ok(obj.get(k), t)), None)
        if bad is not None:
            rejects.add(file, n, f"unparsable value {obj.get(bad)!r}", field=bad, text=line)
            continue
        good_nums.append(n)
        good.append(line)
    if not good:
        return pl.DataFrame(schema={**schema, "__line": pl.Int64})
    df = pl.read_ndjson(io.BytesIO(b"".join(_terminated(good))), schema=schema)
    return df.with_columns(pl.Series("__line", good_nums, dtype=pl.Int64))


def _terminated(lines: Iterable[bytes]) -> Iterator[bytes]:
    for line in lines:
        yield line if line.endswith(b"\n") else line + b"\n"


def parse_json_block(
    first: int, n: int, block: bytes, schema: dict, file: str, rejects
) -> pl.DataFrame:
    """`parse_json_chunk` for a block of `n` lines starting at line `first`."""
    try:
        df = pl.read_ndjson(io.BytesIO(block), schema=schema)
        if df.height == n:  # no blank or bad line: rows are lines first, first+1, ...
            return df.with_columns(pl.int_range(first, first + n, dtype=pl.Int64).alias("__line"))
    except Exception:  # noqa: BLE001 - any polars parse error sends us to the line path
        pass
    pairs = [(first + k, ln) for k, ln in enumerate(block.split(b"\n")[:n]) if ln.strip()]
    nums = [k for k, _ in pairs]
    lines = [ln for _, ln in pairs]
    return parse_json_chunk(nums, lines, schema, file, rejects)
