"""CIFAR-10 readers, format detection, the uint8 cache and every promised error.

Small datasets are generated in each official format with known random pixels (the 10 CIFAR
classes, a few images each) and read back exactly; the real lossy JPEG copy is checked against
its published checksums.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pathlib
import pickle
import re
import shutil
import socket
import sys
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from dawnjax.data import cache
from dawnjax.data import cifar10_formats as formats
from dawnjax.data import download as downloader
from dawnjax.data import image_decode
from dawnjax.data import tar_members
from dawnjax.data.arrays import ImageClassificationData
from dawnjax.data.cifar10 import find_cifar10
from dawnjax.data.cifar10 import load_cifar10
from dawnjax.errors import DataError

CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck')
TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 2


# ---------------------------------------------------------------------------------------------
# Generated data in each format.


def make_arrays(seed=0):
  """Random images with shuffled labels, so a reader that mixes up records is caught."""
  rng = np.random.default_rng(seed)
  out = {}
  for split, per_class in (('train', TRAIN_PER_CLASS), ('test', TEST_PER_CLASS)):
    labels = rng.permutation(np.repeat(np.arange(10, dtype=np.int32), per_class))
    out[f'{split}_images'] = rng.integers(0, 256, (labels.size, 32, 32, 3), dtype=np.uint8)
    out[f'{split}_labels'] = labels
  return out


def official_batches(arrays, suffix=''):
  """(file name, images, labels) of the official layout: five train batches, then the test batch."""
  train = zip(np.array_split(arrays['train_images'], 5), np.array_split(arrays['train_labels'], 5))
  batches = [(f'data_batch_{i + 1}{suffix}', x, y) for i, (x, y) in enumerate(train)]
  return batches + [(f'test_batch{suffix}', arrays['test_images'], arrays['test_labels'])]


def write_python_batches(folder, arrays):
  folder.mkdir(parents=True)
  for name, x, y in official_batches(arrays):
    chw = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), 3072)
    record = {b'batch_label': name.encode(), b'labels': [int(v) for v in y], b'data': chw,
              b'filenames': [f'{i}.png'.encode() for i in range(len(x))]}
    (folder / name).write_bytes(pickle.dumps(record, protocol=2))
  meta = {b'label_names': [c.encode() for c in CLASSES], b'num_cases_per_batch': 6,
          b'num_vis': 3072}
  (folder / 'batches.meta').write_bytes(pickle.dumps(meta, protocol=2))
  return folder


def write_binary_batches(folder, arrays):
  folder.mkdir(parents=True)
  for name, x, y in official_batches(arrays, '.bin'):
    chw = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
    (folder / name).write_bytes(np.concatenate([y.astype(np.uint8)[:, None], chw], 1).tobytes())
  (folder / 'batches.meta.txt').write_text('\n'.join(CLASSES) + '\n\n')
  return folder


def write_image_tree(root, arrays, fmt='PNG'):
  """Writes train/<class>/NNNN.png; returns the arrays in the order a reader must produce."""
  ext = {'PNG': 'png', 'JPEG': 'jpg'}[fmt]
  expected = {}
  for split in ('train', 'test'):
    images, labels = arrays[f'{split}_images'], arrays[f'{split}_labels']
    order = np.argsort(labels, kind='stable')
    for i in order:
      folder = root / split / CLASSES[labels[i]]
      folder.mkdir(parents=True, exist_ok=True)
      rank = len(list(folder.iterdir()))
      Image.fromarray(images[i]).save(folder / f'{rank:04d}.{ext}', fmt)
    expected[f'{split}_images'] = images[order]
    expected[f'{split}_labels'] = labels[order]
  return expected


def make_tar(archive, folder, arcname, mode='w:gz'):
  with tarfile.open(archive, mode) as tar:
    tar.add(folder, arcname=arcname)
  return archive


def assert_same(data, expected, name='cifar10'):
  assert data.name == name
  assert data.classes == CLASSES
  for key in ('train_images', 'train_labels', 'test_images', 'test_labels'):
    got = getattr(data, key)
    assert got.dtype == expected[key].dtype, key
    assert got.shape == expected[key].shape, key
    np.testing.assert_array_equal(got, expected[key], err_msg=key)
  assert data.train_images.shape == (10 * TRAIN_PER_CLASS, 32, 32, 3)
  assert data.test_images.shape == (10 * TEST_PER_CLASS, 32, 32, 3)
  assert np.bincount(data.train_labels).tolist() == [TRAIN_PER_CLASS] * 10
  assert np.bincount(data.test_labels).tolist() == [TEST_PER_CLASS] * 10


@pytest.fixture(scope='module')
def arrays():
  return make_arrays()


# ---------------------------------------------------------------------------------------------
# Official formats.


def test_python_folder_and_tarball(tmp_path, arrays):
  folder = write_python_batches(tmp_path / 'cifar-10-batches-py', arrays)
  assert_same(formats.read_python_dir(str(folder)), arrays)
  # Found whether --data_dir is the batches folder itself or its parent.
  assert_same(load_cifar10(str(folder)), arrays)
  assert_same(load_cifar10(str(tmp_path)), arrays)
  assert 'python' in load_cifar10(str(tmp_path)).source

  tar_dir = tmp_path / 'tar'
  tar_dir.mkdir()
  archive = make_tar(tar_dir / formats.PYTHON_TAR, folder, formats.PYTHON_DIR)
  assert_same(formats.read_python_tar(str(archive)), arrays)
  assert_same(load_cifar10(str(tar_dir)), arrays)
  # A renamed official tarball is recognised by its top folder.
  renamed = archive.rename(tar_dir / 'cifar10.tgz')
  assert find_cifar10(str(renamed)).kind == 'python_tar'
  assert_same(load_cifar10(str(renamed)), arrays)


def test_binary_folder_and_tarball(tmp_path, arrays):
  folder = write_binary_batches(tmp_path / 'cifar-10-batches-bin', arrays)
  data = formats.read_binary_dir(str(folder))
  assert_same(data, arrays)
  assert 'binary' in data.source
  assert_same(load_cifar10(str(tmp_path)), arrays)
  archive = make_tar(tmp_path / formats.BINARY_TAR, folder, formats.BINARY_DIR)
  shutil.rmtree(folder)
  assert_same(formats.read_binary_tar(str(archive)), arrays)
  assert_same(load_cifar10(str(tmp_path)), arrays)
  assert_same(load_cifar10(str(archive)), arrays)


def test_lossless_official_copy_preferred_over_jpeg_tree(tmp_path, arrays):
  write_image_tree(tmp_path / 'cifar10_jpeg', arrays, 'JPEG')
  write_binary_batches(tmp_path / formats.BINARY_DIR, arrays)
  assert find_cifar10(str(tmp_path)).kind == 'binary_dir'


# ---------------------------------------------------------------------------------------------
# Class-folder image trees.


def test_png_tree_folder_and_archives(tmp_path, arrays):
  tree = tmp_path / 'tree'
  expected = write_image_tree(tree, arrays, 'PNG')
  data = formats.read_image_tree(str(tree))
  assert_same(data, expected, name='cifar10')  # PNG is lossless: the official name applies
  assert_same(load_cifar10(str(tree)), expected)
  # Archived, under one top-level folder, gzip-compressed or not.
  for archive, mode in ((tmp_path / 'cifar10-png.tar.gz', 'w:gz'),
                        (tmp_path / 'cifar10-png.tgz', 'w:gz'),
                        (tmp_path / 'cifar10-png.tar', 'w')):
    make_tar(archive, tree, 'cifar10-png', mode)
    assert_same(formats.read_image_tree(str(archive)), expected)
  # And with train/ and test/ at the top of the archive.
  flat = tmp_path / 'flat' / 'cifar10-flat.tar.gz'
  flat.parent.mkdir()
  with tarfile.open(flat, 'w:gz') as tar:
    tar.add(tree / 'train', arcname='train')
    tar.add(tree / 'test', arcname='./test')
  assert_same(load_cifar10(str(flat.parent)), expected)


def test_jpeg_tree_matches_pillow_decode(tmp_path, arrays):
  tree = tmp_path / 'cifar10-jpeg'
  write_image_tree(tree, arrays, 'JPEG')
  # A grayscale JPEG must come out as RGB exactly as Pillow converts it.
  gray = tree / 'train' / 'cat' / '0000.jpg'
  Image.fromarray(arrays['train_images'][0, :, :, 0]).save(gray, 'JPEG')
  files = sorted(tree.glob('train/*/*.jpg'))
  expected = np.stack([np.asarray(Image.open(f).convert('RGB')) for f in files])
  data = formats.read_image_tree(str(tree))
  assert data.name == 'cifar10_jpeg'
  assert 'JPEG' in data.source
  np.testing.assert_array_equal(data.train_images, expected)
  assert data.train_labels.tolist() == [CLASSES.index(f.parent.name) for f in files]
  archive = make_tar(tmp_path / 'cifar10-jpeg.tar.gz', tree, '.')
  shutil.rmtree(tree)
  from_tar = load_cifar10(str(tmp_path))
  assert from_tar.name == 'cifar10_jpeg'
  assert str(archive) in from_tar.source
  np.testing.assert_array_equal(from_tar.train_images, expected)


def test_one_jpeg_makes_the_dataset_lossy(tmp_path, arrays):
  tree = tmp_path / 'tree'
  write_image_tree(tree, arrays, 'PNG')
  Image.fromarray(arrays['test_images'][0]).save(tree / 'test' / 'dog' / 'zz.jpeg', 'JPEG')
  assert formats.read_image_tree(str(tree)).name == 'cifar10_jpeg'


def test_jpeg_header_shortcut_equals_pillow(arrays):
  """Interleaved JPEG dialects: each repeated header reuses its own parse, never another's."""
  variants = [dict(quality=75), dict(quality=30, subsampling=0), dict(quality=90, progressive=True),
              dict(quality=75, optimize=True)]
  blobs = []
  for i, image in enumerate(arrays['train_images']):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, 'JPEG', **variants[i % len(variants)])
    blobs.append(buf.getvalue())
  decoder = image_decode._SeenJpegHeaders()  # pylint: disable=protected-access
  for i, blob in enumerate(blobs):
    expected = np.asarray(Image.open(io.BytesIO(blob)).convert('RGB')).tobytes()
    assert decoder.decode(blob, f'{i}.jpg', (32, 32)) == (expected, True), i
  # The shortcut was taken (else its speed-up silently vanished): one parse per header seen.
  assert 4 <= len(decoder._specs) < len(blobs)  # pylint: disable=protected-access


def test_parallel_decode_equals_serial_and_reports_bad_file(tmp_path, arrays):
  tree = tmp_path / 'tree'
  write_image_tree(tree, arrays, 'JPEG')
  files = [str(f) for f in sorted(tree.glob('*/*/*.jpg'))]
  blobs = [pathlib.Path(f).read_bytes() for f in files]
  serial = image_decode.decode_images(files, blobs, size=(32, 32), num_workers=0)
  # Workers reading the files themselves (the in-memory path runs on the real data below).
  parallel = image_decode.decode_images(files, size=(32, 32), num_workers=2, chunk_size=7)
  np.testing.assert_array_equal(parallel.images, serial.images)
  assert parallel.num_jpeg == serial.num_jpeg == len(files)
  blobs[23] = blobs[23][:100]
  with pytest.raises(DataError, match=re.escape(files[23])):
    image_decode.decode_images(files, blobs, size=(32, 32), num_workers=2, chunk_size=7)


# ---------------------------------------------------------------------------------------------
# Cache.


def test_cache_maps_second_load_and_rebuilds_damage(tmp_path, arrays, caplog):
  tree = tmp_path / 'tree'
  expected = write_image_tree(tree, arrays, 'PNG')
  archive = make_tar(tmp_path / 'cifar10.tar.gz', tree, 'cifar10')
  cache_dir = tmp_path / 'cache'
  first = load_cifar10(str(archive), cache_dir=str(cache_dir))
  assert_same(first, expected)
  (entry,) = [p for p in cache_dir.iterdir() if not p.name.startswith('.')]
  assert sorted(p.name for p in entry.iterdir()) == [
      'meta.json', 'test_images.npy', 'test_labels.npy', 'train_images.npy',
      'train_labels.npy']
  assert not [p for p in cache_dir.iterdir() if p.name.startswith('.')]  # no temp left over
  written = os.stat(entry / 'train_images.npy').st_mtime_ns

  second = load_cifar10(str(archive), cache_dir=str(cache_dir))
  assert isinstance(second.train_images, np.memmap)
  assert os.path.samefile(second.train_images.filename, entry / 'train_images.npy')
  assert not second.train_images.flags.writeable
  assert_same(second, expected)
  assert (second.source, second.name) == (first.source, first.name)
  assert os.stat(entry / 'train_images.npy').st_mtime_ns == written  # read, not rewritten

  # Damaged entries are rebuilt from the source, with a warning.
  (entry / 'meta.json').write_text('{"format_version": 1, "finger')
  with caplog.at_level('WARNING'):
    assert_same(load_cifar10(str(archive), cache_dir=str(cache_dir)), expected)
  assert 'Rebuilding damaged dataset cache' in caplog.text
  caplog.clear()
  with open(entry / 'train_images.npy', 'r+b') as f:
    f.truncate(1000)
  with caplog.at_level('WARNING'):
    assert_same(load_cifar10(str(archive), cache_dir=str(cache_dir)), expected)
  assert 'Rebuilding damaged dataset cache' in caplog.text
  np.save(entry / 'test_labels.npy', np.full(20, 10, np.int32))  # right shape, bad labels
  assert_same(load_cifar10(str(archive), cache_dir=str(cache_dir)), expected)

  # A changed source gets a new entry instead of stale arrays.
  os.utime(archive, ns=(written + 10**9, written + 10**9))
  load_cifar10(str(archive), cache_dir=str(cache_dir))
  assert len([p for p in cache_dir.iterdir() if not p.name.startswith('.')]) == 2


def test_cache_ignores_and_clears_killed_prepares(tmp_path, arrays):
  folder = write_binary_batches(tmp_path / 'cifar-10-batches-bin', arrays)
  cache_dir = tmp_path / 'cache'
  key = cache.fingerprint(str(folder))
  # What a prepare killed mid-write leaves: a temp folder, never a folder named by the key.
  stale = cache_dir / f'.tmp-{key}-killed'
  stale.mkdir(parents=True)
  (stale / 'train_images.npy').write_bytes(b'\x93NUMPY half')
  os.utime(stale, (1, 1))
  data = load_cifar10(str(folder), cache_dir=str(cache_dir))
  assert_same(data, arrays)
  assert not stale.exists()
  assert (cache_dir / key / 'meta.json').is_file()


def test_fingerprint_sees_edits_deep_in_a_folder(tmp_path, arrays):
  tree = tmp_path / 'tree'
  write_image_tree(tree, arrays, 'PNG')
  before = cache.fingerprint(str(tree))
  assert cache.fingerprint(str(tree)) == before
  (tree / 'train' / 'cat' / '0099.png').write_bytes((tree / 'train/cat/0002.png').read_bytes())
  assert cache.fingerprint(str(tree)) != before


# ---------------------------------------------------------------------------------------------
# Errors.


def test_missing_or_empty_data_dir(tmp_path):
  with pytest.raises(DataError, match=r'--data_dir=.*nope.*does not exist.*cifar-10-batches-py'):
    load_cifar10(str(tmp_path / 'nope'))
  with pytest.raises(DataError, match=r'--data_dir=.*no CIFAR-10 found; accepted: .*'
                     r'cifar-10-binary.tar.gz.*train/<class>.*TFDS'):
    load_cifar10(str(tmp_path))


def test_truncated_pickle(tmp_path, arrays):
  folder = write_python_batches(tmp_path / 'cifar-10-batches-py', arrays)
  blob = (folder / 'data_batch_3').read_bytes()
  (folder / 'data_batch_3').write_bytes(blob[:len(blob) // 2])
  with pytest.raises(DataError, match=r'cifar-10-batches-py/data_batch_3: cannot unpickle'):
    load_cifar10(str(tmp_path))


def test_pickle_cannot_run_code(tmp_path, arrays):
  folder = write_python_batches(tmp_path / 'cifar-10-batches-py', arrays)
  marker = tmp_path / 'pwned'

  class Evil:
    def __reduce__(self):
      return (os.mkdir, (str(marker),))

  (folder / 'batches.meta').write_bytes(pickle.dumps({b'label_names': Evil()}, protocol=2))
  with pytest.raises(DataError, match=r'batches.meta: cannot unpickle.*refusing'):
    formats.read_python_dir(str(folder))
  assert not marker.exists()


def test_missing_batch(tmp_path, arrays):
  folder = write_python_batches(tmp_path / 'cifar-10-batches-py', arrays)
  archive = make_tar(tmp_path / 'incomplete.tar.gz', folder, formats.PYTHON_DIR)
  (folder / 'data_batch_5').unlink()
  with pytest.raises(DataError, match=r'data_batch_5: missing'):
    load_cifar10(str(folder))
  with tarfile.open(archive) as src, tarfile.open(tmp_path / formats.PYTHON_TAR, 'w:gz') as dst:
    for member in src:
      if not member.name.endswith('data_batch_5'):
        dst.addfile(member, src.extractfile(member) if member.isfile() else None)
  with pytest.raises(DataError, match=r'cifar-10-python.tar.gz: has no member data_batch_5'):
    formats.read_python_tar(str(tmp_path / formats.PYTHON_TAR))


def test_wrong_binary_record_size(tmp_path, arrays):
  folder = write_binary_batches(tmp_path / 'cifar-10-batches-bin', arrays)
  blob = (folder / 'data_batch_2.bin').read_bytes()
  (folder / 'data_batch_2.bin').write_bytes(blob[:-100])
  with pytest.raises(DataError, match=r'data_batch_2.bin: \d+ bytes is not a whole number of '
                     r'3073-byte records'):
    load_cifar10(str(folder))


def test_label_out_of_range(tmp_path, arrays):
  folder = write_binary_batches(tmp_path / 'cifar-10-batches-bin', arrays)
  blob = bytearray((folder / 'test_batch.bin').read_bytes())
  blob[3073] = 10  # label byte of the second record
  (folder / 'test_batch.bin').write_bytes(bytes(blob))
  with pytest.raises(DataError, match=r'test_batch.bin: labels span \[0, 10\] but there are 10'):
    load_cifar10(str(folder))


def test_truncated_archive(tmp_path, arrays):
  tree = tmp_path / 'tree'
  write_image_tree(tree, arrays, 'PNG')
  archive = make_tar(tmp_path / 'cifar10.tar.gz', tree, 'cifar10')
  archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
  with pytest.raises(DataError, match=r'cifar10.tar.gz: cannot read archive'):
    formats.read_image_tree(str(archive))
  # An uncompressed tar cut exactly between members is caught too.
  plain = make_tar(tmp_path / 'cifar10.tar', tree, 'cifar10', 'w')
  with tarfile.open(plain) as tar:
    cut = [m for m in tar.getmembers() if m.isfile()][-3].offset
  plain.write_bytes(plain.read_bytes()[:cut])
  with pytest.raises(DataError, match=r'cifar10.tar: cannot read archive'):
    formats.read_image_tree(str(plain))


def test_undecodable_image(tmp_path, arrays):
  tree = tmp_path / 'tree'
  write_image_tree(tree, arrays, 'JPEG')
  bad = tree / 'train' / 'frog' / '0001.jpg'
  good = bad.read_bytes()
  bad.write_bytes(good[:200])
  with pytest.raises(DataError, match=r'train/frog/0001.jpg: cannot decode image'):
    formats.read_image_tree(str(tree))
  # Cut inside the pixel data, after files with the same JPEG header were decoded.
  bad.write_bytes(good[:-60])
  with pytest.raises(DataError, match=r'train/frog/0001.jpg: cannot decode image.*truncated'):
    formats.read_image_tree(str(tree))
  bad.write_bytes(b'not an image at all')
  archive = make_tar(tmp_path / 'cifar10.tar.gz', tree, 'cifar10')
  with pytest.raises(DataError, match=r'cifar10.tar.gz:cifar10/train/frog/0001.jpg: cannot '
                     'decode image'):
    load_cifar10(str(archive))


def test_image_not_32x32(tmp_path, arrays):
  tree = tmp_path / 'tree'
  write_image_tree(tree, arrays, 'PNG')
  Image.new('RGB', (64, 32)).save(tree / 'test' / 'ship' / '0000.png')
  with pytest.raises(DataError, match=r'test/ship/0000.png: image is 64x32, expected 32x32'):
    formats.read_image_tree(str(tree))


def test_tree_problems(tmp_path, arrays):
  tree = tmp_path / 'tree'
  write_image_tree(tree, arrays, 'PNG')
  shutil.rmtree(tree / 'test' / 'horse')
  with pytest.raises(DataError, match=r'class folder train/horse has no counterpart test/horse'):
    load_cifar10(str(tree))
  with pytest.raises(DataError, match=r'class folder cifar10/train/horse has no counterpart'):
    formats.read_image_tree(str(make_tar(tmp_path / 'c.tar.gz', tree, 'cifar10')))
  (tree / 'test' / 'horse').mkdir()
  with pytest.raises(DataError, match=r'test/horse/: class folder is empty'):
    formats.read_image_tree(str(tree))
  (tree / 'test' / 'horse' / 'notes.txt').write_text('x')
  with pytest.raises(DataError, match=r'test/horse/notes.txt: not a .jpg/.jpeg/.png image'):
    formats.read_image_tree(str(tree))
  (tree / 'test' / 'horse' / 'notes.txt').unlink()
  shutil.copy(tree / 'test' / 'cat' / '0001.png', tree / 'test' / 'horse' / '0000.png')
  (tree / 'test' / 'horse' / '.DS_Store').write_bytes(b'\0\0\0\1Bud1')  # junk is ignored
  assert np.bincount(formats.read_image_tree(str(tree)).test_labels).tolist() == [2] * 7 + [1, 2, 2]


def test_tfds_needs_tensorflow_datasets(tmp_path, monkeypatch):
  (tmp_path / 'cifar10' / '3.0.2').mkdir(parents=True)
  (tmp_path / 'cifar10' / '3.0.2' / 'dataset_info.json').write_text('{}')
  assert find_cifar10(str(tmp_path)).kind == 'tfds'
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # as if not installed
  with pytest.raises(DataError, match=r'TFDS cifar10 but tensorflow_datasets is not installed'):
    load_cifar10(str(tmp_path))


def test_validate_rejects_bad_arrays(arrays):
  def data(**changes):
    fields = dict(arrays, name='cifar10', classes=CLASSES, source='test')
    fields.update(changes)
    return ImageClassificationData(**fields)
  data().validate((32, 32, 3))
  bad = {
      'uint8 \\[N, H, W, C\\]': dict(train_images=arrays['train_images'].astype(np.float32)),
      'images must be \\(32, 32, 3\\)': dict(test_images=arrays['test_images'][:, :16]),
      'split is empty': dict(test_images=arrays['test_images'][:0],
                             test_labels=arrays['test_labels'][:0]),
      'labels must be an int32': dict(train_labels=arrays['train_labels'].astype(np.int64)),
      'labels span \\[0, 10\\]': dict(train_labels=np.where(arrays['train_labels'] == 9, 10,
                                                            arrays['train_labels'])),
      '30 images but 29 labels': dict(train_labels=arrays['train_labels'][:29]),
      'unique': dict(classes=CLASSES[:9] + ('cat',)),
  }
  for message, change in bad.items():
    with pytest.raises(DataError, match=message):
      data(**change).validate((32, 32, 3))


# ---------------------------------------------------------------------------------------------
# Download (no internet here: a local server stands in for the official host).


def closed_port_url():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  return f'http://127.0.0.1:{port}/cifar-10-python.tar.gz'


def test_download_unreachable(tmp_path, monkeypatch):
  with pytest.raises(DataError, match=r'cannot download .* into --data_dir=.*no internet'):
    downloader.download(closed_port_url(), str(tmp_path), md5='0' * 32, timeout_s=3)
  assert not list(tmp_path.iterdir())  # no partial file left behind
  monkeypatch.setattr(downloader, 'CIFAR10_URL', closed_port_url())
  with pytest.raises(DataError, match=r'--data_dir='):
    load_cifar10(str(tmp_path / 'data'), download=True)


@pytest.fixture
def http_root(tmp_path):
  root = tmp_path / 'www'
  root.mkdir()
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
  handler.log_message = lambda *args: None
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
  thread.start()
  yield root, f'http://127.0.0.1:{server.server_address[1]}'
  server.shutdown()
  server.server_close()


def test_download_verifies_md5_then_loads(tmp_path, arrays, http_root, monkeypatch):
  root, base = http_root
  folder = write_python_batches(tmp_path / 'src' / formats.PYTHON_DIR, arrays)
  archive = make_tar(root / formats.PYTHON_TAR, folder, formats.PYTHON_DIR)
  md5 = hashlib.md5(archive.read_bytes()).hexdigest()
  url = f'{base}/{formats.PYTHON_TAR}'
  data_dir = tmp_path / 'data'
  with pytest.raises(DataError, match=r'has md5 [0-9a-f]{32}, expected 0{32}'):
    downloader.download(url, str(data_dir), md5='0' * 32)
  assert not list(data_dir.iterdir())  # nothing under the final name, no .part left

  monkeypatch.setattr(downloader, 'CIFAR10_URL', url)
  monkeypatch.setattr(downloader, 'CIFAR10_MD5', md5)
  assert_same(load_cifar10(str(data_dir), download=True), arrays)
  assert (data_dir / formats.PYTHON_TAR).read_bytes() == archive.read_bytes()


# ---------------------------------------------------------------------------------------------
# Tar reading.


def test_tar_reader_dialects(tmp_path):
  src = tmp_path / 'src'
  src.mkdir()
  (src / 'a.txt').write_bytes(b'a' * 513)
  (src / 'empty').write_bytes(b'')
  long_name = 'top/' + 'd' * 120 + '/b.txt'  # needs a pax or GNU long-name header
  expected = {'top/a.txt': b'a' * 513, 'top/empty': b'', long_name: b'b'}
  for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
    for link in (False, True):  # a link sends the reader down its tarfile fallback
      archive = tmp_path / f'x{fmt}{link}.tar.gz'
      with tarfile.open(archive, 'w:gz', format=fmt) as tar:
        tar.add(src / 'a.txt', arcname='./top/a.txt')
        tar.add(src / 'empty', arcname='top/empty')
        info = tar.gettarinfo(src / 'a.txt', arcname=long_name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b'b'))
        if link:
          info = tarfile.TarInfo('top/link.txt')
          info.type, info.linkname = tarfile.SYMTYPE, 'a.txt'
          tar.addfile(info)
      files = tar_members.read_tar_members(str(archive), lambda n: True)
      assert files == (dict(expected, **{'top/link.txt': b'a' * 513}) if link else expected)
      only_a = tar_members.read_tar_members(str(archive), lambda n: n.endswith('a.txt'))
      assert only_a == {'top/a.txt': b'a' * 513}
  garbage = tmp_path / 'garbage.tar'
  garbage.write_bytes(os.urandom(2048))
  with pytest.raises(DataError, match=r'garbage.tar: cannot read archive'):
    tar_members.read_tar_members(str(garbage), lambda n: True)


# ---------------------------------------------------------------------------------------------
# The real lossy copy (../shared/data/cifar10-jpeg.tar.gz).


def test_real_cifar10_jpeg(cifar10_jpeg):
  data = cifar10_jpeg
  assert data.name == 'cifar10_jpeg'
  assert data.classes == CLASSES
  assert data.train_images.shape == (50000, 32, 32, 3)
  assert data.test_images.shape == (10000, 32, 32, 3)
  assert data.train_images.dtype == data.test_images.dtype == np.uint8
  assert data.train_labels.dtype == data.test_labels.dtype == np.int32
  assert np.bincount(data.train_labels).tolist() == [5000] * 10
  assert np.bincount(data.test_labels).tolist() == [1000] * 10
  assert hashlib.sha256(data.train_images.tobytes()).hexdigest().startswith('bf3aabd52be912da')
  assert hashlib.sha256(data.test_images.tobytes()).hexdigest().startswith('5a6aa8185204d80b')
  means = data.train_images.reshape(-1, 3).mean(0, dtype=np.float64) / 255
  np.testing.assert_allclose(means, [0.4913, 0.4821, 0.4465], atol=1e-4)


def test_real_cifar10_jpeg_matches_fresh_pillow_decode(cifar10_jpeg, cifar10_jpeg_tarball):
  """The (possibly cached) arrays against Pillow decoding sampled members straight from the tar."""
  rng = np.random.default_rng(0)
  picks = {'train': rng.choice(50000, 100, replace=False),
           'test': rng.choice(10000, 50, replace=False)}
  names = {}
  for split, indices in picks.items():
    for i in indices:
      label, rank = divmod(int(i), 5000 if split == 'train' else 1000)
      names[f'{split}/{CLASSES[label]}/{rank:04d}.jpg'] = (split, int(i))
  members = tar_members.read_tar_members(str(cifar10_jpeg_tarball), names.__contains__)
  assert len(members) == len(names)
  for name, (split, i) in names.items():
    fresh = np.asarray(Image.open(io.BytesIO(members[name])).convert('RGB'))
    np.testing.assert_array_equal(getattr(cifar10_jpeg, f'{split}_images')[i], fresh,
                                  err_msg=name)
    assert getattr(cifar10_jpeg, f'{split}_labels')[i] == CLASSES.index(name.split('/')[1])
