"""Decodes many small image files to one uint8 RGB array with Pillow, in worker processes.

Pillow spends much of its time on a 32x32 JPEG in Python (marker parsing), so threads would
serialise on the GIL: decoding runs in processes, in chunks of a few hundred to a few thousand
images, and repeated JPEG headers are parsed once per chunk (see `_SeenJpegHeaders`). Workers
are spawned, not forked: the caller may already have started JAX, whose threads make fork
unsafe.
"""
from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.process
import dataclasses
import io
import multiprocessing
import os
from typing import Sequence

from absl import logging
import numpy as np
from PIL import Image
from PIL import JpegImagePlugin

from dawnjax.errors import DataError

# Below this many images per worker (~0.1 ms each), starting a process (~0.5 s) costs more
# than it saves.
_MIN_IMAGES_PER_WORKER = 5000
_MIN_CHUNK, _MAX_CHUNK = 64, 2048
_FORMATS = ('JPEG', 'PNG')


@dataclasses.dataclass(frozen=True)
class Decoded:
  images: np.ndarray  # uint8 [N, H, W, 3]
  num_jpeg: int  # how many of the files were JPEG (the name of a lossy copy depends on it)


def available_cpus() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def default_decode_workers(requested: int | None = None) -> int:
  """`requested`, else one decoding process per CPU core but one, which the main loop and the transfers keep."""
  return requested if requested is not None else max(1, available_cpus() - 1)


def decode_images(names: Sequence[str],
                  blobs: Sequence[bytes] | None = None,
                  *,
                  size: tuple[int, int],
                  num_workers: int | None = None,
                  chunk_size: int | None = None) -> Decoded:
  """Decodes images to RGB uint8 [N, H, W, 3] in the order given.

  Args:
    names: file paths (read by the workers) or, with `blobs`, names used in error messages.
    blobs: the encoded files, when they are already in memory (e.g. read from an archive).
    size: required (width, height) of every image.
    num_workers: decoding processes, this one included; None picks from the CPU count and the
      number of images; 0 or 1 decodes in this process only.
    chunk_size: images per task; None balances a few tasks per worker.

  Raises:
    DataError: an image cannot be read or decoded, or has another size; names the file.
  """
  n = len(names)
  if blobs is not None and len(blobs) != n:
    raise ValueError(f'{n} names but {len(blobs)} blobs')
  if num_workers is None:
    num_workers = min(available_cpus(), n // _MIN_IMAGES_PER_WORKER)
  width, height = size
  if num_workers <= 1 or n == 0:
    data, num_jpeg = _decode_chunk(names, blobs, size)
    return Decoded(np.frombuffer(data, np.uint8).reshape(n, height, width, 3), num_jpeg)

  if chunk_size is None:
    chunk_size = min(_MAX_CHUNK, max(_MIN_CHUNK, -(-n // (4 * num_workers))))
  try:
    return _decode_in_pool(names, blobs, size, num_workers, chunk_size)
  except concurrent.futures.process.BrokenProcessPool as e:
    # Typically a script that loads data at import time, without `if __name__ == '__main__'`:
    # spawned workers re-import it and die. Slower in one process is still correct.
    logging.warning('Image-decoding workers failed (%s); decoding in this process. Guard the '
                    "script's entry point with if __name__ == '__main__' to decode in "
                    'parallel.', e)
    return decode_images(names, blobs, size=size, num_workers=0)


def _decode_in_pool(names: Sequence[str], blobs: Sequence[bytes] | None, size: tuple[int, int],
                    num_workers: int, chunk_size: int) -> Decoded:
  """Decodes chunks in num_workers - 1 spawned processes and in this one."""
  n = len(names)
  width, height = size
  out = np.empty((n, height, width, 3), np.uint8)
  flat = out.reshape(n, -1)
  num_jpeg = 0
  todo = collections.deque(range(0, n, chunk_size))

  def chunk(start):
    stop = min(n, start + chunk_size)
    return names[start:stop], None if blobs is None else blobs[start:stop], size

  def place(start, result):
    nonlocal num_jpeg
    data, chunk_jpeg = result
    rows = np.frombuffer(data, np.uint8).reshape(-1, flat.shape[1])
    flat[start:start + rows.shape[0]] = rows
    num_jpeg += chunk_jpeg

  # This process decodes too: one process fewer to spawn (~0.4 s of CPU each, which matters on
  # 2 cores), and work starts before any worker is up.
  spawned = num_workers - 1
  context = multiprocessing.get_context('spawn')
  with concurrent.futures.ProcessPoolExecutor(spawned, mp_context=context) as pool:
    pending = {}
    try:
      while todo or pending:
        while todo and len(pending) < 2 * spawned:  # keep every worker's next chunk queued
          start = todo.popleft()
          pending[pool.submit(_decode_chunk, *chunk(start))] = start
        if todo:
          start = todo.pop()
          place(start, _decode_chunk(*chunk(start)))
          done = [f for f in pending if f.done()]
        else:
          done, _ = concurrent.futures.wait(pending,
                                            return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
          place(pending.pop(future), future.result())
    except BaseException:
      # Fail fast on the first bad file instead of decoding the rest of the dataset first.
      pool.shutdown(wait=True, cancel_futures=True)
      raise
  return Decoded(out, num_jpeg)


def _decode_chunk(names: Sequence[str], blobs: Sequence[bytes] | None,
                  size: tuple[int, int]) -> tuple[bytearray, int]:
  """Returns the concatenated RGB bytes of the images and how many were JPEG."""
  width, height = size
  stride = width * height * 3
  out = bytearray(stride * len(names))
  num_jpeg = 0
  decoder = _SeenJpegHeaders()
  for i, name in enumerate(names):
    if blobs is None:
      try:
        with open(name, 'rb') as f:
          blob = f.read()
      except OSError as e:
        raise DataError(f'{name}: cannot read image ({e}); check the file and its permissions')
    else:
      blob = blobs[i]
    rgb, is_jpeg = decoder.decode(blob, name, size)
    out[i * stride:(i + 1) * stride] = rgb
    num_jpeg += is_jpeg
  return out, num_jpeg


def decode_rgb(blob: bytes, name: str, size: tuple[int, int]) -> tuple[bytes, bool]:
  """Decodes one JPEG or PNG file to packed RGB bytes (HWC); returns them and whether JPEG."""
  rgb, is_jpeg, _ = _decode_with_pillow(blob, name, size)
  return rgb, is_jpeg


# What Pillow's JPEG header parsing decides, and all that its decoder needs: mode, size, the
# decoder's arguments and configuration.
_JpegSpec = tuple[str, tuple[int, int], tuple, tuple]


class _SeenJpegHeaders:
  """Decodes JPEGs whose header (segments up to the start of scan) repeats one already seen.

  Of the ~200 us Pillow spends on a 32x32 JPEG, ~120 us is its Python parsing of the header
  markers; the pixels take ~50 us in libjpeg. A dataset written by one encoder repeats the same
  header in every file, and Pillow's parse depends on those bytes alone, so for a repeated
  header the parse is skipped and libjpeg is handed the file as ImageFile.load would hand it:
  the same decoder, arguments and bytes give the same pixels (the tests compare with Image.open
  on several JPEG dialects and on the real dataset's checksums).
  Anything unusual (other modes, several tiles, a decoder error, a Pillow without these
  internals) takes the ordinary Image.open path.
  """

  # Headers remembered; a dataset of per-image (optimised) Huffman tables never repeats one.
  _MAX_HEADERS = 16

  def __init__(self):
    self._specs: dict[bytes, _JpegSpec] = {}

  def decode(self, blob: bytes, name: str, size: tuple[int, int]) -> tuple[bytes, bool]:
    for header, spec in self._specs.items():
      # A file that starts with a whole remembered header (segments up to and including the
      # start of scan) has exactly that header: no need to walk its segments.
      if blob.startswith(header):
        rgb = _decode_jpeg_with_spec(blob, spec)
        if rgb is not None:
          return rgb, True
        break
    rgb, is_jpeg, spec = _decode_with_pillow(blob, name, size)
    if spec is not None and len(self._specs) < self._MAX_HEADERS:
      end = _jpeg_header_end(blob)
      if end > 0:
        self._specs[blob[:end]] = spec
    return rgb, is_jpeg


def _jpeg_header_end(blob: bytes) -> int:
  """Offset just past the start-of-scan segment, walking the JPEG segments; -1 if none."""
  if blob[:2] != b'\xff\xd8':
    return -1
  pos, n = 2, len(blob)
  while pos + 4 <= n:
    if blob[pos] != 0xFF:
      return -1
    marker = blob[pos + 1]
    if marker == 0xDA:
      end = pos + 2 + int.from_bytes(blob[pos + 2:pos + 4], 'big')
      return end if end <= n else -1
    if marker == 0xFF:  # fill byte
      pos += 1
    elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
      pos += 2
    else:
      pos += 2 + int.from_bytes(blob[pos + 2:pos + 4], 'big')
  return -1


def _decode_jpeg_with_spec(blob: bytes, spec: _JpegSpec) -> bytes | None:
  """libjpeg decode as in ImageFile.load; None if that fails (the caller then asks Pillow)."""
  mode, size, args, config = spec
  try:
    pixels = Image.core.new(mode, size)
    decoder = Image._getdecoder(mode, 'jpeg', args, config)  # pylint: disable=protected-access
    try:
      decoder.setimage(pixels, (0, 0) + size)
      consumed, err = decoder.decode(blob)
    finally:
      decoder.cleanup()
    if consumed >= 0 or err < 0:
      return None  # truncated or damaged: let Image.open report it
    return Image.Image()._new(pixels).tobytes()  # pylint: disable=protected-access
  except Exception:  # pylint: disable=broad-except  # any surprise: take the ordinary path
    return None


def _decode_with_pillow(blob: bytes, name: str,
                        size: tuple[int, int]) -> tuple[bytes, bool, _JpegSpec | None]:
  """Image.open decode; also returns the JPEG's spec when a repeat of its header may reuse it."""
  try:
    with Image.open(io.BytesIO(blob), formats=_FORMATS) as image:
      if image.size != size:
        raise DataError(f'{name}: image is {image.size[0]}x{image.size[1]}, expected '
                        f'{size[0]}x{size[1]}; this is not a CIFAR-10 image, remove it')
      is_jpeg = image.format == 'JPEG'
      spec = None
      tile = image.tile
      if (type(image) is JpegImagePlugin.JpegImageFile and image.mode == 'RGB' and
          len(tile) == 1 and tile[0][0] == 'jpeg' and tile[0][2] == 0):
        spec = (image.mode, image.size, tuple(tile[0][3]), tuple(image.decoderconfig))
      if image.mode != 'RGB':
        image = image.convert('RGB')  # also loads
      else:
        image.load()
      return image.tobytes(), is_jpeg, spec
  except DataError:
    raise
  except Exception as e:  # Pillow reports damaged files through many exception types.
    raise DataError(f'{name}: cannot decode image ({type(e).__name__}: {e}); the file is '
                    'corrupt, replace it or re-download the dataset') from None
