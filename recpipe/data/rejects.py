"""Bad-input bookkeeping shared by every reader.

A reader that meets a line it cannot use calls `RejectLog.add(file, line, reason)` and moves
on; the ingest stage writes every reject to `rejects.jsonl` and fails when the rejected
fraction of any file exceeds `ingest.max_reject_fraction`, naming that file and its first bad
lines. Readers also report how many lines each file had (`count_lines`) so the fraction is
per file, not diluted by a large clean file next to a broken small one.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path


class IngestError(RuntimeError):
    """Raised for input the pipeline cannot use; the message says what was expected."""


@dataclass
class Reject:
    file: str
    line: int  # 1-based line number in the (decompressed) file; 0 when not line-based
    reason: str
    field: str | None = None
    text: str | None = None  # the offending line, truncated

    def as_dict(self) -> dict:
        d = {"file": self.file, "line": self.line, "reason": self.reason}
        if self.field is not None:
            d["field"] = self.field
        if self.text is not None:
            d["text"] = self.text
        return d


@dataclass
class RejectLog:
    """Collects rejects and per-file line counts during one ingest run."""

    keep_text: int = 300
    rejects: list[Reject] = field(default_factory=list)
    lines: Counter = field(default_factory=Counter)
    notes: dict = field(default_factory=lambda: defaultdict(int))  # tolerated oddities

    def add(self, file, line: int, reason: str, field: str | None = None, text=None) -> None:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "replace")
        if text is not None:
            text = text.rstrip("\r\n")[: self.keep_text]
        self.rejects.append(Reject(Path(file).name, int(line), reason, field, text))

    def count_lines(self, file, n: int) -> None:
        self.lines[Path(file).name] += int(n)

    def note(self, key: str, n: int = 1) -> None:
        """Count something tolerated but worth reporting (e.g. reviews of unknown businesses)."""
        self.notes[key] += int(n)

    def per_file(self) -> dict[str, int]:
        return dict(Counter(r.file for r in self.rejects))

    def summary(self) -> dict:
        per_file = self.per_file()
        out = {"rejects": len(self.rejects), "lines_read": int(sum(self.lines.values()))}
        for f, n in sorted(self.lines.items()):
            out[f"lines/{f}"] = int(n)
            out[f"rejects/{f}"] = int(per_file.get(f, 0))
        out.update({k: int(v) for k, v in sorted(self.notes.items())})
        return out

    def write(self, path: str | Path) -> None:
        from recpipe.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w") as f:
            for r in self.rejects:
                f.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")

    def check(self, max_fraction: float, show: int = 5) -> None:
        """Raise IngestError when any file's reject fraction exceeds `max_fraction`."""
        per_file = self.per_file()
        for name, n_bad in sorted(per_file.items()):
            total = max(self.lines.get(name, 0), n_bad, 1)
            if n_bad / total > max_fraction:
                first = [r for r in self.rejects if r.file == name][:show]
                detail = "\n".join(
                    f"  {r.file}:{r.line}: {r.reason}" + (f" (field {r.field!r})" if r.field else "")
                    for r in first
                )
                raise IngestError(
                    f"{name}: {n_bad} of {total} lines rejected ({n_bad / total:.2%}), more than "
                    f"ingest.max_reject_fraction={max_fraction}. First bad lines:\n{detail}"
                )
