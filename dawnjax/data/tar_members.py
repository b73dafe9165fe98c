"""Reads the regular files of a (compressed) tar archive into memory, without extracting to disk.

CIFAR-10 as a JPEG tree is 60,000 members of ~1 KB; `tarfile` spends ~50 us of Python per
member header, about as much as decoding the member costs. Archives of regular files and
folders in ustar, pax or GNU form (what GNU tar and Python write) are therefore parsed here
directly; anything else (links, sparse files, odd headers or damage) falls back to `tarfile`,
which knows every dialect and reports damage.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import posixpath
import tarfile
import zlib
from typing import BinaryIO, Callable

from dawnjax.errors import DataError

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
# Regular file ('0', NUL in old tars, '7' contiguous) and directory ('5'): with the pax and
# GNU long-name headers below, all the fast path understands.
_REGULAR = (b'0', b'\0', b'7')
_DIRECTORY = b'5'
_GLOBAL_PAX = b'g'
_GNU_LONGNAME = b'L'
# Headers whose contents describe the member that follows them (pax extended header, GNU long
# name).
_NEXT_MEMBER = (b'x', _GNU_LONGNAME)
# Keys of a global pax header that would change how later members are named or sized.
_PAX_MEMBER_KEYS = ('path', 'linkpath', 'size')
# Errors the decompressors raise for truncated or damaged input.
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError)


class _NeedsTarfile(Exception):
  """The archive uses a tar feature the fast path does not parse."""


def read_tar_members(path: str, wanted: Callable[[str], bool]) -> dict[str, bytes]:
  """Returns {name: contents} for the archive's regular files whose name passes `wanted`.

  Names are normalised: no leading './' or '/'. gzip, bzip2, xz or uncompressed archives.

  Raises:
    DataError: the file is missing, not a tar archive, truncated or corrupt.
  """
  try:
    with _open_decompressed(path) as stream:
      return _read_ustar(stream, wanted)
  except _NeedsTarfile:
    pass
  except _STREAM_ERRORS as e:
    raise DataError(f'{path}: cannot read archive ({e}); the file is truncated or corrupt, '
                    're-download it') from e
  try:
    return _read_with_tarfile(path, wanted)
  except _STREAM_ERRORS as e:
    raise DataError(f'{path}: cannot read archive ({e}); the file is truncated or corrupt, '
                    're-download it') from e


def normalise_name(name: str) -> str:
  """'./a//b/' -> 'a/b', the form every reader matches names against."""
  if name.startswith(('.', '/')) or '//' in name or '/.' in name or name.endswith('/'):
    name = posixpath.normpath('/' + name).lstrip('/')
  return name


def _open_decompressed(path: str) -> BinaryIO:
  with open(path, 'rb') as f:
    magic = f.read(6)
  if magic.startswith(b'\x1f\x8b'):
    return gzip.open(path, 'rb')
  if magic.startswith(b'BZh'):
    return bz2.open(path, 'rb')
  if magic.startswith(b'\xfd7zXZ\x00'):
    return lzma.open(path, 'rb')
  return open(path, 'rb', buffering=1 << 20)


def _read_ustar(stream: BinaryIO, wanted: Callable[[str], bool]) -> dict[str, bytes]:
  files = {}
  cursor = _Cursor(stream)
  overrides = {}  # from a pax 'x' or GNU 'L' header: applies to the next member only
  while True:
    header = cursor.take(_BLOCK)
    if not header:
      # Writers always end with zero blocks; without them we cannot tell a complete archive
      # from one cut at a member boundary, and a silently partial dataset is worse than an error.
      raise EOFError('archive ends without the end-of-archive marker')
    if len(header) < _BLOCK:
      raise EOFError('archive ends inside a member header')
    if header == _ZERO_BLOCK:
      break
    if _octal(header[148:156]) != sum(header) - sum(header[148:156]) + 8 * ord(' '):
      raise _NeedsTarfile()  # Signed-checksum dialect or damage: let tarfile decide.
    kind = header[156:157]
    size = _octal(header[124:136])
    if kind in _REGULAR and 'size' in overrides:
      size = _int(overrides['size'])
    padding = -size % _BLOCK
    if kind in _REGULAR:
      name = overrides.get('path')
      if name is None:
        raw = header[0:100].split(b'\0', 1)[0]
        if header[257:262] == b'ustar':
          prefix = header[345:500].split(b'\0', 1)[0]
          if prefix:
            raw = prefix + b'/' + raw
        name = raw.decode('utf-8', 'surrogateescape')
      name = normalise_name(name)
      overrides = {}
      if wanted(name):
        data = cursor.take(size)
        if len(data) < size:
          raise EOFError(f'archive ends inside member {name}')
        files[name] = data
        cursor.skip(padding)
        continue
    elif kind in _NEXT_MEMBER:
      data = cursor.take(size)
      if len(data) < size:
        raise EOFError('archive ends inside a pax or long-name header')
      if kind == _GNU_LONGNAME:
        overrides['path'] = data.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
      else:
        overrides.update(_pax_records(data))
      cursor.skip(padding)
      continue
    elif kind == _GLOBAL_PAX:
      if any(key in _PAX_MEMBER_KEYS for key in _pax_records(cursor.take(size))):
        raise _NeedsTarfile()
      cursor.skip(padding)
      continue
    elif kind == _DIRECTORY:
      overrides = {}
    else:
      raise _NeedsTarfile()
    cursor.skip(size + padding)
  return files


def _pax_records(data: bytes) -> dict[str, str]:
  """Parses pax extended-header records, each "<length> <key>=<value>" and a newline."""
  records = {}
  pos = 0
  while pos < len(data) and data[pos:pos + 1] != b'\0':
    space = data.find(b' ', pos)
    if space < 0:
      raise _NeedsTarfile()
    end = pos + _int(data[pos:space])
    key, eq, value = data[space + 1:end - 1].partition(b'=')
    if not eq or end <= space or data[end - 1:end] != b'\n':
      raise _NeedsTarfile()
    records[key.decode('utf-8', 'surrogateescape')] = value.decode('utf-8', 'surrogateescape')
    pos = end
  if records.get('hdrcharset') == 'BINARY':
    raise _NeedsTarfile()  # names in a legacy encoding: tarfile knows how to decode them
  return records


def _int(text: str | bytes) -> int:
  try:
    return int(text)
  except ValueError:
    raise _NeedsTarfile() from None


class _Cursor:
  """Reads a stream in large chunks: one decompressor call per member costs more than parsing."""

  _CHUNK = 1 << 22

  def __init__(self, stream: BinaryIO):
    self._stream = stream
    self._buf = b''
    self._pos = 0

  def take(self, n: int) -> bytes:
    """Returns the next n bytes, fewer only at the end of the stream."""
    end = self._pos + n
    if end > len(self._buf):
      self._buf = self._buf[self._pos:] + self._stream.read(max(n, self._CHUNK))
      self._pos, end = 0, n
    out = self._buf[self._pos:end]
    self._pos = min(end, len(self._buf))
    return out

  def skip(self, n: int) -> None:
    buffered = len(self._buf) - self._pos
    if n <= buffered:
      self._pos += n
      return
    n -= buffered
    self._buf, self._pos = b'', 0
    while n > 0:
      chunk = self._stream.read(min(n, self._CHUNK))
      if not chunk:
        raise EOFError('archive ends inside a member')
      n -= len(chunk)


def _octal(field: bytes) -> int:
  if field[:1] and field[0] & 0x80:
    raise _NeedsTarfile()  # base-256 numbers (members over 8 GiB)
  try:
    return int(field.strip(b'\0 ') or b'0', 8)
  except ValueError:
    raise _NeedsTarfile() from None


def _read_with_tarfile(path: str, wanted: Callable[[str], bool]) -> dict[str, bytes]:
  files = {}
  with tarfile.open(path, 'r:*') as archive:
    for member in archive:
      if not (member.isfile() or member.islnk() or member.issym()):
        continue
      name = normalise_name(member.name)
      if not wanted(name):
        continue
      f = archive.extractfile(member)
      if f is None:
        continue
      data = f.read()
      if len(data) != member.size and member.isfile():
        raise EOFError(f'archive ends inside member {name}')
      files[name] = data
  return files
