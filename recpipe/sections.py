"""The index of params.yaml: every section and the typed dataclass it is validated into.

Each section's dataclass lives beside the code it configures (so a stage imports, and its DVC
deps name, only what it runs); this index is the one place that lists them all, for
`recpipe params` (validate a whole params.yaml before `dvc repro`) and for the test that keeps
params.yaml and the dataclasses in step. Entries are "module:attr" strings, imported on use:
a dataclass is parsed with `recpipe.config.section`; a function (eval's preset resolver) takes
the section's mapping and returns its dataclass.
"""

from __future__ import annotations

import dataclasses
import importlib

from recpipe.config import ParamError, section

SECTIONS: dict[str, str] = {
    "dataset": "recpipe.params:DatasetParams",
    "ingest": "recpipe.params:IngestParams",
    "split": "recpipe.params:SplitParams",
    "sample": "recpipe.data.sample:SampleConfig",
    "eval": "recpipe.eval.protocol:resolve",
    "profile": "recpipe.profiling.profile:ProfileParams",
    "embed": "recpipe.embedding.embed:EmbedParams",
    "baselines": "recpipe.baselines:BaselinesParams",
    "graph": "recpipe.graph.params:GraphParams",
    "sasrec": "recpipe.seq.params:SASRecParams",
    "mmhcl": "recpipe.hypergraph.params:MMHCLParams",
    "hellm": "recpipe.hellm.params:HeLLMParams",
    "cllm4rec": "recpipe.cllm4rec.params:CLLM4RecParams",
    "hum": "recpipe.hum.params:HUMParams",
    "report": "recpipe.eval.report:ReportParams",
}
SCALARS = ("seed",)  # top-level keys that are values, not sections (recpipe.train.seeds)


def load_section(params: dict, name: str):
    """Section `name` of a loaded params.yaml as its typed dataclass; raises ParamError."""
    if name not in SECTIONS:
        raise ParamError(f"{name}: no such section; sections are {', '.join(SECTIONS)}")
    module, attr = SECTIONS[name].split(":")
    target = getattr(importlib.import_module(module), attr)
    if dataclasses.is_dataclass(target):
        return section(params, name, target)
    return target(params.get(name))


def validate_all(params: dict) -> dict[str, object]:
    """Every section of `params` validated: {name: dataclass}; unknown sections are errors."""
    from recpipe.train.seeds import top_seed

    unknown = sorted(set(params) - set(SECTIONS) - set(SCALARS))
    if unknown:
        raise ParamError(f"unknown section(s) {', '.join(unknown)}; sections are "
                         f"{', '.join([*SCALARS, *SECTIONS])}")
    top_seed(params)
    return {name: load_section(params, name) for name in SECTIONS if name in params}
