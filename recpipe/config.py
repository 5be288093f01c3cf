"""Typed, validated parameter sections.

Each stage reads only its own section of params.yaml (plus the shared `dataset`, `split` and
`seed` keys) into a dataclass. `parse` checks every key against the dataclass fields: an
unknown key, a wrong type or a value outside its allowed set/range stops the stage with a
message naming the key, the value and what is allowed. Constraints live in field metadata:

    kcore: int = field(default=5, metadata=rng(0, None))
    protocol: str = field(default="random", metadata=choice("random", "loo"))
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin


class ParamError(ValueError):
    """A params.yaml value that the stage cannot use."""


def choice(*allowed) -> dict:
    return {"choices": tuple(allowed)}


def rng(lo=None, hi=None, lo_open: bool = False) -> dict:
    return {"range": (lo, hi, lo_open)}


def _type_name(tp) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp, key: str):
    """Return `value` as type `tp` or raise ParamError naming `key`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ParamError:
                pass
        raise ParamError(f"{key}: {value!r} is not {_type_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ParamError(f"{key}: {value!r} is not allowed; choose {_type_name(tp)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{key}: {value!r} is not a list")
        (inner,) = get_args(tp)[:1] or (Any,)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(f"{key}: {value!r} is not a mapping")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamError(f"{key}: expected a mapping for section {tp.__name__}")
        return parse(tp, value, prefix=key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ParamError(f"{key}: {value!r} is not true/false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ParamError(f"{key}: {value!r} is not an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ParamError(f"{key}: {value!r} is not a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ParamError(f"{key}: {value!r} is not a string")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ParamError(f"{key}: {value!r} is not a path")
    return value


def _check_meta(value, meta, key: str) -> None:
    if value is None:
        return
    if "choices" in meta:
        for v in value if isinstance(value, list) else [value]:
            if v not in meta["choices"]:
                allowed = ", ".join(repr(c) for c in meta["choices"])
                raise ParamError(f"{key}: {v!r} is not allowed; choose one of {allowed}")
    if "range" in meta:
        lo, hi, lo_open = meta["range"]
        vals = value if isinstance(value, list) else [value]
        for v in vals:
            if lo is not None and (v <= lo if lo_open else v < lo):
                raise ParamError(f"{key}: {v!r} must be {'>' if lo_open else '>='} {lo}")
            if hi is not None and v > hi:
                raise ParamError(f"{key}: {v!r} must be <= {hi}")


def parse(cls, data: dict | None, prefix: str = ""):
    """Validate `data` into dataclass `cls`; missing keys take their documented defaults."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix or cls.__name__
        raise ParamError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        value = _coerce(data[name], hints[name], key)
        _check_meta(value, f.metadata, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def load_params(path: str | Path = "params.yaml") -> dict:
    import yaml

    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path}: not found; run the stage from the project root")
    return yaml.safe_load(path.read_text()) or {}


def section(params: dict, name: str, cls):
    """Parse section `name` of a loaded params dict into `cls`."""
    if name in params and params[name] is not None and not isinstance(params[name], dict):
        raise ParamError(f"{name}: expected a mapping, got {params[name]!r}")
    return parse(cls, params.get(name) or {}, prefix=name)
