"""Readers for each on-disk form of CIFAR-10; each returns a validated ImageClassificationData.

Formats:
  - official python pickles: `cifar-10-batches-py/` or `cifar-10-python.tar.gz`;
  - official binary records: `cifar-10-batches-bin/` or `cifar-10-binary.tar.gz`;
  - class-folder image tree `train/<class>/*.{jpg,jpeg,png}` + `test/<class>/...`, as a folder
    or a .tar/.tar.gz/.tgz archive (optionally under one top-level folder);
  - TensorFlow Datasets `cifar10` (only when tensorflow_datasets is installed).
Damaged input raises DataError naming the file; nothing here returns a partial dataset.
"""
from __future__ import annotations

import abc
import io
import os
import pickle
import posixpath
from typing import Mapping, Sequence

import numpy as np

from dawnjax.data import image_decode
from dawnjax.data import tar_members
from dawnjax.data.arrays import ImageClassificationData
from dawnjax.errors import DataError

IMAGE_SHAPE = (32, 32, 3)
_PIXELS = 32 * 32 * 3

PYTHON_DIR = 'cifar-10-batches-py'
PYTHON_TAR = 'cifar-10-python.tar.gz'
_PYTHON_TRAIN = tuple(f'data_batch_{i}' for i in range(1, 6))
_PYTHON_TEST = 'test_batch'
_PYTHON_META = 'batches.meta'
PYTHON_FILES = _PYTHON_TRAIN + (_PYTHON_TEST, _PYTHON_META)

BINARY_DIR = 'cifar-10-batches-bin'
BINARY_TAR = 'cifar-10-binary.tar.gz'
_BINARY_TRAIN = tuple(f'data_batch_{i}.bin' for i in range(1, 6))
_BINARY_TEST = 'test_batch.bin'
_BINARY_META = 'batches.meta.txt'
BINARY_FILES = _BINARY_TRAIN + (_BINARY_TEST, _BINARY_META)
_RECORD = 1 + _PIXELS

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
ARCHIVE_EXTENSIONS = ('.tar.gz', '.tgz', '.tar')
_SPLITS = ('train', 'test')


# ---------------------------------------------------------------------------------------------
# Official python-pickle format.


def read_python_dir(path: str) -> ImageClassificationData:
  """Reads `cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta)."""
  return _from_python_files(_DirFiles(path), f'CIFAR-10 python batches in {path}')


def read_python_tar(path: str) -> ImageClassificationData:
  """Reads `cifar-10-python.tar.gz` in memory, without extracting it."""
  return _from_python_files(_TarFiles(path, PYTHON_FILES), f'CIFAR-10 python batches in {path}')


def _from_python_files(files: _FileSet, source: str) -> ImageClassificationData:
  meta_file = files.where(_PYTHON_META)
  meta = _unpickle(files.read(_PYTHON_META), meta_file)
  classes = tuple(_text(name) for name in _get(meta, 'label_names', meta_file))
  train = [_python_batch(files.read(name), files.where(name)) for name in _PYTHON_TRAIN]
  test = _python_batch(files.read(_PYTHON_TEST), files.where(_PYTHON_TEST))
  return _make('cifar10', train, [test], classes, source)


def _python_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray, str]:
  batch = _unpickle(blob, name)
  data = np.asarray(_get(batch, 'data', name))
  labels = np.asarray(_get(batch, 'labels', name))
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
    raise DataError(f'{name}: b"data" must be uint8 [N, {_PIXELS}], got {data.dtype} '
                    f'{data.shape}; the file is corrupt, re-download CIFAR-10')
  if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
    raise DataError(f'{name}: b"labels" must be {data.shape[0]} integers, got {labels.dtype} '
                    f'{labels.shape}; the file is corrupt, re-download CIFAR-10')
  return _chw_to_hwc(data), labels, name


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles plain containers and numpy arrays only: a pickle can otherwise run any code."""

  _ALLOWED = {
      ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
      ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
      ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode'),
  }

  def find_class(self, module: str, name: str):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'refusing to load {module}.{name}')
    return super().find_class(module, name)


def _unpickle(blob: bytes, name: str) -> Mapping:
  try:
    # The official files were written by Python 2; 'bytes' keeps its str keys as b'...'.
    obj = _ArrayUnpickler(io.BytesIO(blob), encoding='bytes').load()
  except Exception as e:  # pickle reports truncation/damage through many exception types
    raise DataError(f'{name}: cannot unpickle ({type(e).__name__}: {e}); the file is truncated '
                    'or corrupt, re-download CIFAR-10') from None
  if not isinstance(obj, dict):
    raise DataError(f'{name}: expected a pickled dict, got {type(obj).__name__}; '
                    're-download CIFAR-10')
  return obj


def _get(mapping: Mapping, key: str, name: str):
  for k in (key.encode(), key):  # Python 2 pickles have bytes keys, Python 3 ones str keys
    if k in mapping:
      return mapping[k]
  raise DataError(f'{name}: missing key {key!r} (has {sorted(map(str, mapping))}); '
                  'not a CIFAR-10 batch, re-download CIFAR-10')


def _text(value: bytes | str) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------
# Official binary format.


def read_binary_dir(path: str) -> ImageClassificationData:
  """Reads `cifar-10-batches-bin/` (data_batch_1..5.bin, test_batch.bin, batches.meta.txt)."""
  return _from_binary_files(_DirFiles(path), f'CIFAR-10 binary batches in {path}')


def read_binary_tar(path: str) -> ImageClassificationData:
  """Reads `cifar-10-binary.tar.gz` in memory, without extracting it."""
  return _from_binary_files(_TarFiles(path, BINARY_FILES), f'CIFAR-10 binary batches in {path}')


def _from_binary_files(files: _FileSet, source: str) -> ImageClassificationData:
  try:
    meta = files.read(_BINARY_META).decode('utf-8')
  except UnicodeDecodeError:
    raise DataError(f'{files.where(_BINARY_META)}: not a text file of class names; '
                    're-download CIFAR-10') from None
  classes = tuple(line.strip() for line in meta.splitlines() if line.strip())
  train = [_binary_batch(files.read(name), files.where(name)) for name in _BINARY_TRAIN]
  test = _binary_batch(files.read(_BINARY_TEST), files.where(_BINARY_TEST))
  return _make('cifar10', train, [test], classes, source)


def _binary_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray, str]:
  if not blob or len(blob) % _RECORD:
    raise DataError(f'{name}: {len(blob)} bytes is not a whole number of {_RECORD}-byte records '
                    '(1 label + 3072 pixels); the file is truncated, re-download CIFAR-10')
  records = np.frombuffer(blob, np.uint8).reshape(-1, _RECORD)
  return _chw_to_hwc(records[:, 1:]), records[:, 0], name


# ---------------------------------------------------------------------------------------------
# Class-folder image tree.


def read_image_tree(path: str, *, num_workers: int | None = None) -> ImageClassificationData:
  """Reads `train/<class>/*.{jpg,jpeg,png}` and `test/<class>/...` from a folder or tar archive.

  Classes are the sorted class-folder names (label = index); images are in sorted path order
  within each class. Named 'cifar10_jpeg' if any image is JPEG (lossy copy), else 'cifar10'.

  Args:
    path: the folder holding train/ and test/, or a .tar/.tar.gz/.tgz archive of it (the tree
      may sit under one top-level folder inside the archive).
    num_workers: decoding processes; None picks from the CPU count.
  """
  if os.path.isdir(path):
    names = _walk(path)
    blobs = None
  else:
    files = tar_members.read_tar_members(path, _is_tree_file)
    names = sorted(files)
    blobs = files
  tree = _parse_tree(names, path)
  classes = tuple(sorted(tree['train']))
  ordered, labels = [], {}
  for split in _SPLITS:
    split_names = [name for c in classes for name in tree[split][c]]
    labels[split] = np.repeat(np.arange(len(classes), dtype=np.int32),
                              [len(tree[split][c]) for c in classes])
    ordered.append(split_names)
  all_names = ordered[0] + ordered[1]
  if blobs is None:
    decoded = image_decode.decode_images(
        [os.path.join(path, *n.split('/')) for n in all_names], size=IMAGE_SHAPE[1::-1],
        num_workers=num_workers)
  else:
    decoded = image_decode.decode_images(
        [f'{path}:{n}' for n in all_names], [blobs[n] for n in all_names],
        size=IMAGE_SHAPE[1::-1], num_workers=num_workers)
  num_train = len(ordered[0])
  kind = 'JPEG' if decoded.num_jpeg else 'PNG'
  return ImageClassificationData(
      name='cifar10_jpeg' if decoded.num_jpeg else 'cifar10',
      train_images=decoded.images[:num_train],
      train_labels=labels['train'],
      test_images=decoded.images[num_train:],
      test_labels=labels['test'],
      classes=classes,
      source=f'class-folder {kind} tree in {path}',
  ).validate(IMAGE_SHAPE)


def _is_tree_file(name: str) -> bool:
  return bool(name) and not name.endswith('/') and not _is_junk(name)


def _is_junk(name: str) -> bool:
  # Finder/Explorer droppings, not data: '.DS_Store', '._x.jpg', '__MACOSX/', 'Thumbs.db'.
  # (String tests, not a split: this runs once per member of a 60,000-file archive.)
  return (name.startswith('.') or '/.' in name or '__MACOSX' in name or
          name.endswith('Thumbs.db'))


def _walk(root: str) -> list[str]:
  """Relative '/'-separated paths of the files under root/train and root/test, and empty dirs."""
  names = []
  for split in _SPLITS:
    top = os.path.join(root, split)
    if not os.path.isdir(top):
      continue
    for dirpath, dirnames, filenames in os.walk(top):
      dirnames[:] = [d for d in dirnames if not _is_junk(d)]
      rel = os.path.relpath(dirpath, root).replace(os.sep, '/')
      if not filenames and not dirnames:
        names.append(rel + '/')  # an empty class folder is an error, not a missing class
      names.extend(f'{rel}/{f}' for f in filenames if not _is_junk(f'{rel}/{f}'))
  return sorted(names)


def _parse_tree(names: Sequence[str], path: str) -> dict[str, dict[str, list[str]]]:
  """Groups `[top/]split/class/file` names into {split: {class: sorted names}}."""
  prefix = _tree_prefix(names, path)
  tree = {split: {} for split in _SPLITS}
  for name in names:
    if not name.startswith(prefix):
      continue
    parts = name[len(prefix):].split('/')
    if parts[0] not in _SPLITS:
      continue  # e.g. a README next to train/ and test/
    where = f'{path}:{name}'
    if len(parts) == 2 and parts[1] == '':
      continue  # an empty split folder; reported below as having no images
    if len(parts) == 3 and parts[2] == '':
      raise DataError(f'{where}: class folder is empty; remove it or add its images')
    if len(parts) != 3:
      raise DataError(f'{where}: expected {parts[0]}/<class>/<image>; move the file into a '
                      'class folder or remove it')
    if not parts[2].lower().endswith(IMAGE_EXTENSIONS):
      raise DataError(f'{where}: not a {"/".join(IMAGE_EXTENSIONS)} image; remove it or '
                      'convert it')
    tree[parts[0]].setdefault(parts[1], []).append(name)
  for split in _SPLITS:
    if not tree[split]:
      raise DataError(f'{path}: no images under {prefix}{split}/<class>/; expected train/ and '
                      'test/ folders of class folders of .jpg/.png images')
  train, test = set(tree['train']), set(tree['test'])
  for a, b, only in (('train', 'test', train - test), ('test', 'train', test - train)):
    if only:
      raise DataError(f'{path}: class folder {prefix}{a}/{sorted(only)[0]} has no counterpart '
                      f'{prefix}{b}/{sorted(only)[0]}; both splits need the same classes')
  for split in _SPLITS:
    for files in tree[split].values():
      files.sort()
  return tree


def _tree_prefix(names: Sequence[str], path: str) -> str:
  """'' if train/ and test/ are at the top, else 'top/' for the one folder holding them."""
  tops = set()
  for name in names:
    parts = name.split('/')
    if parts[0] in _SPLITS:
      return ''
    if len(parts) > 1 and parts[1] in _SPLITS:
      tops.add(parts[0])
  if len(tops) == 1:
    return tops.pop() + '/'
  if tops:
    raise DataError(f'{path}: several folders hold train/ and test/ ({sorted(tops)}); keep one')
  raise DataError(f'{path}: no train/<class>/ and test/<class>/ image folders found')


# ---------------------------------------------------------------------------------------------
# TensorFlow Datasets.


def read_tfds(data_dir: str, *, download: bool = False) -> ImageClassificationData:
  """Reads TFDS `cifar10` from `data_dir` (TFDS layout: data_dir/cifar10/<version>/)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise DataError(f'{data_dir}: holds TFDS cifar10 but tensorflow_datasets is not installed; '
                    "pip install 'dawnjax[tfds]' or point --data_dir at an official CIFAR-10 "
                    'download') from None
  try:
    (train, test), info = tfds.load('cifar10', split=['train', 'test'], data_dir=data_dir,
                                    batch_size=-1, as_supervised=True, with_info=True,
                                    download=download)
    train_images, train_labels = tfds.as_numpy(train)
    test_images, test_labels = tfds.as_numpy(test)
    classes = tuple(info.features['label'].names)
  except Exception as e:  # TFDS raises its own and TensorFlow's error types
    raise DataError(f'{data_dir}: TFDS cannot load cifar10 ({type(e).__name__}: {e}); '
                    'prepare it with tfds or point --data_dir at an official download') from None
  return _make('cifar10', [(train_images, train_labels, 'train split')],
               [(test_images, test_labels, 'test split')], classes,
               f'TFDS cifar10 in {data_dir}')


# ---------------------------------------------------------------------------------------------
# Shared helpers.


def _chw_to_hwc(rows: np.ndarray) -> np.ndarray:
  return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _make(name: str, train: Sequence[tuple[np.ndarray, np.ndarray, str]],
          test: Sequence[tuple[np.ndarray, np.ndarray, str]], classes: tuple[str, ...],
          source: str) -> ImageClassificationData:
  """Concatenates (images, labels, file) batches after checking each file's labels."""
  for _, labels, file in (*train, *test):
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
      raise DataError(f'{file}: labels span [{labels.min()}, {labels.max()}] but there are '
                      f'{len(classes)} classes; the file is corrupt, re-download CIFAR-10')
  def join(batches, part):
    return np.ascontiguousarray(np.concatenate([b[part] for b in batches]))
  return ImageClassificationData(
      name=name,
      train_images=join(train, 0),
      train_labels=join(train, 1).astype(np.int32),
      test_images=join(test, 0),
      test_labels=join(test, 1).astype(np.int32),
      classes=classes,
      source=source,
  ).validate(IMAGE_SHAPE)


class _FileSet(abc.ABC):
  """The named files of one official format, in a folder or an archive."""

  @abc.abstractmethod
  def read(self, name: str) -> bytes:
    """The file's bytes; DataError if it is missing."""

  @abc.abstractmethod
  def where(self, name: str) -> str:
    """How error messages name the file."""


class _DirFiles(_FileSet):

  def __init__(self, path: str):
    self._path = path

  def where(self, name: str) -> str:
    return os.path.join(self._path, name)

  def read(self, name: str) -> bytes:
    file = self.where(name)
    try:
      with open(file, 'rb') as f:
        return f.read()
    except FileNotFoundError:
      raise DataError(f'{file}: missing; the CIFAR-10 folder is incomplete, re-download it') \
          from None
    except OSError as e:
      raise DataError(f'{file}: cannot read ({e}); check the file and its permissions') from None


class _TarFiles(_FileSet):
  """Members matched by base name, wherever the archive keeps them (one copy each)."""

  def __init__(self, path: str, wanted: Sequence[str]):
    self._path = path
    self._files = {}
    self._names = {}
    members = tar_members.read_tar_members(path, lambda n: posixpath.basename(n) in wanted)
    for name, blob in sorted(members.items()):
      base = posixpath.basename(name)
      if base in self._files:
        raise DataError(f'{path}: holds {base} twice ({self._names[base]}, {name}); keep one '
                        'CIFAR-10 copy per archive')
      self._files[base] = blob
      self._names[base] = name

  def where(self, name: str) -> str:
    return f'{self._path}:{self._names.get(name, name)}'

  def read(self, name: str) -> bytes:
    if name not in self._files:
      raise DataError(f'{self._path}: has no member {name}; the archive is incomplete, '
                      're-download it')
    return self._files[name]
