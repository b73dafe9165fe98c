"""Crash-safe file writes: a reader sees the old file or the new one, never half of one.

Results are written at the end of runs that may be killed (preemption, time limits, Ctrl-C), and
a truncated JSON/TSV would silently corrupt a leaderboard. So every writer streams into a
temporary file in the destination's directory (same filesystem, so the final rename is atomic),
fsyncs it, then `os.replace`s it over the destination.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


def _current_umask() -> int:
  # mkstemp creates files 0600; results should get the same mode as any other file the user
  # writes. Reading the umask means setting it, so do it once, at import, before any threads.
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


_FILE_MODE = 0o666 & ~_current_umask()


def _fsync_dir(directory: Path) -> None:
  # Makes the rename itself durable; not every platform/filesystem can open a directory.
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


@contextlib.contextmanager
def _replacing(path: str | os.PathLike, mode: str, **open_kwargs) -> Iterator[IO[Any]]:
  """Yields a temp file that replaces `path` only if the with-block finishes without error."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # Dot-prefixed so directory globs such as `*.json` never pick up a leftover.
  fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
  try:
    with os.fdopen(fd, mode, **open_kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp_name, _FILE_MODE)
    os.replace(tmp_name, path)
  except BaseException:
    # BaseException too: a KeyboardInterrupt mid-write must not leave the temp file behind.
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp_name)
    raise
  _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
  """Atomically replaces `path` with `data`, creating parent directories. Returns the path."""
  with _replacing(path, 'wb') as f:
    f.write(data)
  return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = 'utf-8') -> Path:
  """Atomically replaces `path` with `text`. newline='' so '\\n' is written as is everywhere."""
  with _replacing(path, 'w', encoding=encoding, newline='') as f:
    f.write(text)
  return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2,
                      sort_keys: bool = False) -> Path:
  """Atomically replaces `path` with `obj` as strict JSON (NaN/Infinity rejected).

  Strict because NaN is not JSON: other tools (pandas, jq, browsers) refuse such files. Raises
  TypeError/ValueError from `json` for objects it cannot encode; the old file is then untouched.
  """
  with _replacing(path, 'w', encoding='utf-8', newline='') as f:
    # Streamed, so a failure midway really does leave a partial temp file to clean up.
    json.dump(obj, f, indent=indent, sort_keys=sort_keys, allow_nan=False, ensure_ascii=False)
    f.write('\n')
  return Path(path)
