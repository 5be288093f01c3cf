"""Explicit registries with lazy imports.

Each registry is a plain dict from a params value to "module:attribute", so listing the
choices imports nothing (several entries pull in torch or transformers) and adding an entry
is one line. `resolve` imports the chosen entry or raises with the choices named.
"""

from __future__ import annotations

import importlib


def resolve(table: dict[str, str], name: str, key: str, error: type[Exception] = ValueError):
    """The attribute registered as `name` in `table`; `key` is the params key, for the message."""
    if name not in table:
        raise error(f"{key}={name!r} is not available; choose one of {', '.join(table)}")
    module, attr = table[name].split(":")
    return getattr(importlib.import_module(module), attr)
