"""Graph collaborative filtering backbones and RLMRec's semantic alignment (issue #6).

Registry: `BACKBONES` maps `graph.model` to "module:Class"; models import lazily (torch).
"""

from __future__ import annotations

from recpipe.registry import resolve

BACKBONES: dict[str, str] = {
    "gccf": "recpipe.graph.gccf:GCCF",
    "lightgcn": "recpipe.graph.lightgcn:LightGCN",
    "sgl": "recpipe.graph.sgl:SGL",
    "simgcl": "recpipe.graph.simgcl:SimGCL",
    "dccf": "recpipe.graph.dccf:DCCF",
    "autocf": "recpipe.graph.autocf:AutoCF",
}


def get_backbone(name: str):
    return resolve(BACKBONES, name, "graph.model")
