"""Graph collaborative filtering backbones and RLMRec's semantic alignment (issue #6).

Registry: `BACKBONES` maps `graph.model` to "module:Class"; models import lazily (torch).
"""

from __future__ import annotations

from recpipe.registry import resolve

BACKBONES: dict[str, str] = {
    "lightgcn": "recpipe.graph.lightgcn:LightGCN",
}


def get_backbone(name: str):
    return resolve(BACKBONES, name, "graph.model")
