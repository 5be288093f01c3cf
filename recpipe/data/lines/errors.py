"""A damaged raw file (truncated or corrupt, mid-stream) as an IngestError that names the file.

The bare EOFError / BadGzipFile name no file and say nothing of how far the read got; the
streaming readers catch `_stream_errors()` around the whole stream and raise `unreadable(...)`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What a damaged file raises mid-stream: EOFError (a gzip stream cut short), OSError
    (BadGzipFile: a bad header or CRC; a failing disk), zlib/ISA-L errors (corrupt deflate)."""
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error]
    with contextlib.suppress(ImportError):
        from isal.isal_zlib import error as isal_error

        errors.append(isal_error)
    return tuple(errors)


def unreadable(path: str | Path, err: BaseException, lines: int, text_bytes: int | None):
    """The IngestError for a file that broke off mid-stream: which file, why, how far it got.

    Raised instead of the bare EOFError / BadGzipFile, whose messages name no file; the
    ingest stage reports it (exit 2) and, writing atomically, leaves no partial table.
    """
    from recpipe.data.rejects import IngestError

    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if isinstance(err, EOFError):
        what = "is truncated (the compressed stream ends before its end marker)"
    elif path.suffix == ".gz":
        what = "is corrupt (not valid gzip data)"
    else:
        what = "could not be read to the end"
    where = "" if text_bytes is None else f" after {text_bytes:,} bytes of text"
    return IngestError(
        f"{path}: the file {what}: {type(err).__name__}: {err}. It broke off{where}; {lines:,} "
        f"lines had been parsed. Copy or download the {size:,}-byte file again (an interrupted "
        f"transfer is the usual cause)"
    )


def _text_position(f) -> int | None:
    """Bytes of text decompressed from `f` when it broke (read-ahead included, so at or just
    past the last complete line), or None when the broken stream cannot say."""
    try:
        return f.tell()
    except (OSError, ValueError):
        return None
