"""Append-only JSONL cache of profiling results, safe against crashes.

One line per finished request: {"key", "entity", "status": "ok"|"failed", "profile",
"raw", "error", "attempts", "prompt_tokens", "completion_tokens"}. Each line is flushed to
the OS as it is written, so a killed process keeps every profile it finished; an fsync at
most every `sync_s` seconds (and on close) also covers a machine crash without making a fast
backend wait on the disk for every line. A torn last line (the process died mid-write) is
ignored on load, and a later line for the same key wins.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class ProfileCache:
    def __init__(self, path: str | Path, sync_s: float = 1.0):
        self.path = Path(path)
        self.sync_s = sync_s
        self._synced = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        self.torn_lines = 0
        torn_tail = False
        if self.path.exists():
            self._load()
            torn_tail = self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")
        if torn_tail:  # a crash mid-write left half a line: never glue the next record to it
            self._fh.write("\n")

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.torn_lines += 1
                    continue
                if isinstance(rec, dict) and "key" in rec:
                    self.entries[rec["key"]] = rec

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, record: dict) -> None:
        if not record.get("key"):
            raise ValueError("cache records need a key")
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        if time.monotonic() - self._synced >= self.sync_s:
            os.fsync(self._fh.fileno())
            self._synced = time.monotonic()
        self.entries[record["key"]] = record

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
