"""The split as the evaluator sees it: the one in-memory view, `recpipe.data.view.DataView`.

`SplitData` and `load_split` are the view's older names, kept so every consumer keeps working.
"""

from __future__ import annotations

from recpipe.data.view import UNKNOWN, DataView, csr, from_frames, load_view

SplitData = DataView
load_split = load_view

__all__ = ["UNKNOWN", "DataView", "SplitData", "csr", "from_frames", "load_split", "load_view"]
