"""Finds an ImageNet-style class-folder tree and makes one reader over both of its splits.

Layout: `train/<class>/<image>` and `val/<class>/<image>` (`validation/` or `test/` are accepted
for val), .JPEG/.jpg/.jpeg/.png, as a folder, an uncompressed .tar (read in place by byte
offset, never extracted) or a compressed .tar.gz/.tgz/.tar.bz2/.tar.xz (members unpacked once
into one packed scratch file: fine for small trees, too slow for all of ImageNet). The tree may
sit under one top-level folder. Labels are indices into the sorted class-folder names; files are
in sorted order within a class. Rows 0..num_train-1 of the reader are train, the rest val.

The official ILSVRC2012 validation tarball is flat (50,000 files, labels in a separate file):
sort it into val/<wnid>/ first (the usual `valprep.sh`).
"""
from __future__ import annotations

import dataclasses
import os
import re
import tarfile
import tempfile
from typing import Iterable

import numpy as np

from dawnjax.data import tar_members
from dawnjax.data.imagenet.readers import FileReader, PackedReader
from dawnjax.errors import DataError

IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png')
VAL_FOLDERS = ('val', 'validation', 'test')
COMPRESSED_MAGIC = (b'\x1f\x8b', b'BZh', b'\xfd7zXZ\x00')
# ILSVRC2012-CLS: 1000 WordNet ids, 1,281,167 train and 50,000 val images.
IMAGENET_COUNTS = (1281167, 50000)
_WNID = re.compile(r'^n\d{8}$')


@dataclasses.dataclass(frozen=True)
class ImageTree:
  """A class-folder image dataset: one reader, train rows first, then val rows."""
  name: str  # what results are reported under (never 'imagenet' for anything else)
  source: str  # format and path, for the summary
  classes: tuple[str, ...]
  num_train: int
  num_val: int
  val_folder: str  # which folder served as val ('val', 'validation' or 'test')
  reader: FileReader | PackedReader

  @property
  def train_labels(self) -> np.ndarray:
    return self.reader.labels[:self.num_train]

  @property
  def val_labels(self) -> np.ndarray:
    return self.reader.labels[self.num_train:]


def find_tree(path: str, *, scratch_dir: str | None = None) -> ImageTree:
  """Reads the listing of the tree at `path` (folder or archive); decodes nothing.

  Args:
    path: folder holding train/ and val/ (or test/), or an archive of that.
    scratch_dir: where a compressed archive's members are packed (default: the system temp dir);
      the packed file is deleted when the process exits.

  Raises:
    DataError: no such tree, a stray file, classes that differ between splits, or a damaged archive.
  """
  if os.path.isdir(path):
    names = _walk(path)
    entries = {n: None for n in names}
    kind = 'folder'
  elif os.path.isfile(path):
    with open(path, 'rb') as f:
      magic = f.read(6)
    kind = 'compressed' if magic.startswith(COMPRESSED_MAGIC) else 'tar'
    entries = _tar_index(path) if kind == 'tar' else None
    names = list(entries) if entries is not None else None
  else:
    raise DataError(f'--data_dir={path}: does not exist; expected a folder with train/ and val/ '
                    'class folders, or a .tar/.tar.gz of one')
  blobs = None
  if kind == 'compressed':
    blobs = tar_members.read_tar_members(path, lambda n: n.lower().endswith(IMAGE_EXTENSIONS))
    names = list(blobs)
  splits, val_folder, prefix = _parse(names, path)
  classes = tuple(sorted(splits['train']))
  ordered, labels = [], []
  for split in ('train', 'val'):
    for label, cls in enumerate(classes):
      files = sorted(splits[split][cls])
      ordered.extend(files)
      labels.extend([label] * len(files))
  num_train = sum(len(v) for v in splits['train'].values())
  num_val = len(ordered) - num_train
  labels = np.asarray(labels, np.int32)
  if kind == 'folder':
    reader = FileReader(path, np.asarray(ordered, dtype=np.bytes_), labels)
  elif kind == 'tar':
    offsets = np.asarray([entries[n][0] for n in ordered], np.int64)
    sizes = np.asarray([entries[n][1] for n in ordered], np.int64)
    reader = PackedReader(path, offsets, sizes, np.asarray(ordered, dtype=np.bytes_), labels)
  else:
    packed, offsets, sizes = _pack(blobs, ordered, scratch_dir)
    reader = PackedReader(packed, offsets, sizes, np.asarray(ordered, dtype=np.bytes_), labels,
                          where=path)
  name = report_name(path, classes, num_train, num_val)
  source = f'class-folder image tree ({kind}) {path}' + (f' under {prefix}' if prefix else '')
  return ImageTree(name, source, classes, num_train, num_val, val_folder, reader)


def report_name(path: str, classes: tuple[str, ...], num_train: int, num_val: int) -> str:
  """'imagenet' only for the complete ILSVRC2012 layout; any other tree is named after its file.

  e.g. cifar10-jpeg.tar.gz -> 'cifar10_jpeg_as_imagenet_tree', so a result on a stand-in can
  never be mistaken for an ImageNet result.
  """
  if len(classes) == 1000 and all(_WNID.match(c) for c in classes):
    return 'imagenet' if (num_train, num_val) == IMAGENET_COUNTS else 'imagenet_incomplete'
  base = os.path.basename(os.path.normpath(path)).lower()
  for ext in ('.tar.gz', '.tar.bz2', '.tar.xz', '.tgz', '.tar'):
    if base.endswith(ext):
      base = base[:-len(ext)]
      break
  stem = re.sub(r'[^a-z0-9]+', '_', base).strip('_') or 'image_tree'
  return f'{stem}_as_imagenet_tree'


def _walk(root: str) -> list[str]:
  """'split/class/file' for every file under root/<split>/<class>/ (hidden files skipped)."""
  names = []
  with os.scandir(root) as top:
    top_dirs = sorted(e.name for e in top if e.is_dir() and not e.name.startswith('.'))
  if 'train' not in top_dirs and len(top_dirs) == 1:
    inner = os.path.join(root, top_dirs[0])
    return [f'{top_dirs[0]}/{n}' for n in _walk(inner)]
  for split in top_dirs:
    if split not in ('train',) + VAL_FOLDERS:
      continue
    split_dir = os.path.join(root, split)
    with os.scandir(split_dir) as classes:
      for cls in classes:
        if cls.name.startswith('.'):
          continue
        if not cls.is_dir():
          names.append(f'{split}/{cls.name}')  # reported as a stray file by _parse
          continue
        with os.scandir(cls.path) as files:
          found = [f'{split}/{cls.name}/{f.name}' for f in files if not f.name.startswith('.')]
        names.extend(found or [f'{split}/{cls.name}/'])
  return names


def _tar_index(path: str) -> dict[str, tuple[int, int]]:
  """{member name: (data offset, size)} of an uncompressed tar's regular image files."""
  index = {}
  try:
    with tarfile.open(path, 'r:') as archive:
      for member in archive:
        if member.isfile() and member.name.lower().endswith(IMAGE_EXTENSIONS):
          index[tar_members.normalise_name(member.name)] = (member.offset_data, member.size)
  except (tarfile.TarError, OSError, EOFError) as e:
    raise DataError(f'{path}: not a readable tar archive ({e}); re-create it or pass the '
                    'extracted folder') from None
  return index


def _pack(blobs: dict[str, bytes], ordered: list[str],
          scratch_dir: str | None) -> tuple[str, np.ndarray, np.ndarray]:
  """Writes the members in `ordered` back to back into one scratch file (removed at exit)."""
  directory = scratch_dir or tempfile.gettempdir()
  os.makedirs(directory, exist_ok=True)
  fd, packed = tempfile.mkstemp(prefix='dawnjax_packed_', suffix='.bin', dir=directory)
  _remove_at_exit(packed)
  sizes = np.asarray([len(blobs[n]) for n in ordered], np.int64)
  offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
  with os.fdopen(fd, 'wb') as f:
    for n in ordered:
      f.write(blobs[n])
  return packed, offsets, sizes


def _remove_at_exit(path: str) -> None:
  import atexit

  def remove():
    try:
      os.unlink(path)
    except OSError:
      pass

  atexit.register(remove)


def _parse(names: Iterable[str], path: str):
  """{'train'|'val': {class: [names]}}, the val folder used, and the common prefix."""
  names = [n for n in names if not _is_junk(n)]
  prefix = _prefix(names, path)
  found: dict[str, dict[str, list[str]]] = {}
  for name in names:
    if not name.startswith(prefix):
      continue
    parts = name[len(prefix):].split('/')
    if parts[0] not in ('train',) + VAL_FOLDERS:
      continue  # e.g. a README or LOC_synset_mapping.txt beside the splits
    where = f'{path}:{name}'
    if len(parts) == 3 and parts[2] == '':
      raise DataError(f'{where}: class folder is empty; remove it or add its images')
    if len(parts) != 3:
      raise DataError(f'{where}: expected {parts[0]}/<class>/<image>; a flat val folder (the '
                      'official ILSVRC2012 layout) must first be sorted into val/<wnid>/ folders')
    if not parts[2].lower().endswith(IMAGE_EXTENSIONS):
      raise DataError(f'{where}: not a {"/".join(IMAGE_EXTENSIONS)} image; remove it')
    found.setdefault(parts[0], {}).setdefault(parts[1], []).append(name)
  if 'train' not in found:
    raise DataError(f'{path}: no {prefix}train/<class>/<image> files; expected train/ and val/ '
                    '(or validation/, test/) folders of class folders of JPEG images')
  vals = [v for v in VAL_FOLDERS if v in found]
  if not vals:
    raise DataError(f'{path}: has {prefix}train/ but no {prefix}val/, validation/ or test/ class '
                    'folders; the validation split is needed for evaluation')
  if len(vals) > 1:
    raise DataError(f'{path}: several validation folders ({", ".join(vals)}); keep one')
  val = vals[0]
  train_classes, val_classes = set(found['train']), set(found[val])
  for a, b, only in (('train', val, train_classes - val_classes),
                     (val, 'train', val_classes - train_classes)):
    if only:
      raise DataError(f'{path}: class folder {prefix}{a}/{sorted(only)[0]} has no counterpart '
                      f'in {prefix}{b}/; both splits need the same classes')
  return {'train': found['train'], 'val': found[val]}, val, prefix


def _prefix(names: list[str], path: str) -> str:
  tops = set()
  for name in names:
    parts = name.split('/')
    if parts[0] == 'train':
      return ''
    if len(parts) > 1 and parts[1] == 'train':
      tops.add(parts[0])
  if len(tops) == 1:
    return tops.pop() + '/'
  if tops:
    raise DataError(f'{path}: several folders hold train/ ({sorted(tops)}); keep one')
  raise DataError(f'{path}: no train/<class>/ folder found; expected train/ and val/ class '
                  'folders of images')


def _is_junk(name: str) -> bool:
  # Finder/Explorer droppings: '.DS_Store', '._x.jpg', '__MACOSX/', 'Thumbs.db'.
  return name.startswith('.') or '/.' in name or '__MACOSX' in name or name.endswith('Thumbs.db')
