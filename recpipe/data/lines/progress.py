"""Progress display for streamed work, whose length is unknown until the end."""

from __future__ import annotations


def progress(desc: str, unit: str = " lines"):
    """A tqdm bar for streamed work of unknown length (rate and count, on stderr)."""
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, unit_scale=True, mininterval=1.0, leave=False)
