"""Graph collaborative filtering backbones and RLMRec's semantic alignment (issue #6).

Registry: `BACKBONES` maps `graph.model` to "module:Class"; models import lazily (torch).
"""

from __future__ import annotations

import importlib

BACKBONES: dict[str, str] = {
    "lightgcn": "recpipe.graph.lightgcn:LightGCN",
}


def get_backbone(name: str):
    if name not in BACKBONES:
        raise ValueError(f"graph.model={name!r} is not available; choose one of {', '.join(BACKBONES)}")
    module, cls = BACKBONES[name].split(":")
    return getattr(importlib.import_module(module), cls)
