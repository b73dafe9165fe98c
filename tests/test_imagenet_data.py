"""ImageNet-style data: tree discovery (folder/tar/tar.gz), crop boxes, decoding, plans, loader."""
import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from dawnjax.data.imagenet import pipeline as pl
from dawnjax.data.imagenet import transforms as tf
from dawnjax.data.imagenet.tree import find_tree, report_name
from dawnjax.errors import DataError


def _jpeg(rng, colour, size, mode='RGB', fmt='JPEG') -> bytes:
  w, h = size
  pixels = np.clip(np.asarray(colour)[None, None] + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
  image = Image.fromarray(pixels)
  if mode != 'RGB':
    image = image.convert(mode)
  buf = io.BytesIO()
  image.save(buf, fmt, quality=90)
  return buf.getvalue()


def make_tree(root, classes=('ant', 'bee', 'cat'), per_class=(6, 3), val='val', seed=0):
  """A class-folder tree: each class its own colour; odd sizes, greyscale, CMYK and PNG files."""
  rng = np.random.default_rng(seed)
  colours = rng.integers(30, 225, (len(classes), 3))
  k = 0
  for split, n in (('train', per_class[0]), (val, per_class[1])):
    for ci, cls in enumerate(classes):
      os.makedirs(os.path.join(root, split, cls), exist_ok=True)
      for i in range(n):
        size = tuple(int(v) for v in rng.integers(24, 96, 2))
        mode, fmt, ext = [('RGB', 'JPEG', 'JPEG'), ('L', 'JPEG', 'jpg'), ('CMYK', 'JPEG', 'jpeg'),
                          ('RGB', 'PNG', 'png')][k % 4]
        k += 1
        with open(os.path.join(root, split, cls, f'{i:03d}.{ext}'), 'wb') as f:
          f.write(_jpeg(rng, colours[ci], size, mode, fmt))
  return root


def make_archive(tree_root, path, top='mytree'):
  mode = 'w:gz' if path.endswith('.gz') else 'w'
  with tarfile.open(path, mode) as archive:
    archive.add(tree_root, arcname=top)
  return path


@pytest.fixture(scope='module')
def tree_dir(tmp_path_factory):
  return make_tree(str(tmp_path_factory.mktemp('tree') / 'tiny-tree'))


def test_folder_tar_and_targz_give_the_same_dataset(tree_dir, tmp_path):
  trees = [find_tree(tree_dir),
           find_tree(make_archive(tree_dir, str(tmp_path / 'tiny-tree.tar'))),
           find_tree(make_archive(tree_dir, str(tmp_path / 'tiny-tree.tar.gz')), scratch_dir=str(tmp_path))]
  for t in trees:
    assert t.classes == ('ant', 'bee', 'cat')
    assert (t.num_train, t.num_val, t.val_folder) == (18, 9, 'val')
    np.testing.assert_array_equal(t.train_labels, np.repeat([0, 1, 2], 6))
    np.testing.assert_array_equal(t.val_labels, np.repeat([0, 1, 2], 3))
    assert t.name == 'tiny_tree_as_imagenet_tree'
    for i in (0, 7, 20):
      assert t.reader.read(i) == trees[0].reader.read(i)
      assert t.reader.label(i) == trees[0].reader.label(i)
  assert 'ant/000.JPEG' in trees[2].reader.describe(0) and 'tiny-tree.tar.gz' in trees[2].reader.describe(0)


def test_test_folder_serves_as_val_and_names_never_claim_imagenet(tmp_path):
  t = find_tree(make_tree(str(tmp_path / 'cifar10-jpeg'), val='test', per_class=(2, 1)))
  assert t.val_folder == 'test' and t.num_val == 3
  assert report_name('/x/cifar10-jpeg.tar.gz', ('a', 'b'), 50000, 10000) == 'cifar10_jpeg_as_imagenet_tree'
  wnids = tuple(f'n{i:08d}' for i in range(1000))
  assert report_name('/data/imagenet', wnids, 1281167, 50000) == 'imagenet'
  assert report_name('/data/imagenet', wnids, 128116, 50000) == 'imagenet_incomplete'
  assert report_name('/data/imagenet', wnids[:100], 1281167, 50000) == 'imagenet_as_imagenet_tree'


def test_tree_errors_say_what_to_fix(tmp_path):
  flat = make_tree(str(tmp_path / 'flat'), per_class=(1, 1))
  with open(os.path.join(flat, 'val', 'ILSVRC2012_val_00000001.JPEG'), 'wb') as f:
    f.write(b'x')
  with pytest.raises(DataError, match='sorted into val/<wnid>'):
    find_tree(flat)
  no_val = str(tmp_path / 'noval')
  os.makedirs(os.path.join(no_val, 'train', 'a'))
  with open(os.path.join(no_val, 'train', 'a', '1.jpg'), 'wb') as f:
    f.write(_jpeg(np.random.default_rng(0), (1, 2, 3), (8, 8)))
  with pytest.raises(DataError, match='no .*val/'):
    find_tree(no_val)
  mismatch = make_tree(str(tmp_path / 'mismatch'), per_class=(1, 1))
  os.rename(os.path.join(mismatch, 'val', 'cat'), os.path.join(mismatch, 'val', 'dog'))
  with pytest.raises(DataError, match='no counterpart'):
    find_tree(mismatch)
  with pytest.raises(DataError, match='does not exist'):
    find_tree(str(tmp_path / 'missing'))


def test_random_resized_crop_boxes_follow_torchvision_rules():
  rng = np.random.default_rng(0)
  for width, height in ((500, 375), (375, 500), (64, 64), (1000, 100)):
    fallbacks = 0
    for _ in range(300):
      u = rng.random((tf.RRC_TRIES, tf.UNIFORMS_PER_TRY), dtype=np.float32)
      left, top, w, h = tf.random_resized_crop_box(width, height, u, (0.08, 1.0), (3 / 4, 4 / 3))
      assert 0 <= left and 0 <= top and left + w <= width and top + h <= height and w > 0 and h > 0
      area = w * h / (width * height)
      if area > 1.0 + 1e-9 or area < 0.07 or not 0.7 <= w / h <= 1.4:
        fallbacks += 1  # the centre-crop fallback with the ratio clamped
        assert (w, h) in ((width, height), (min(width, round(height * 4 / 3)), height),
                          (width, min(height, round(width * 4 / 3))))
    assert fallbacks < (300 if width / height > 5 else 10)
  # A very wide image always falls back to a centred 4:3 crop.
  u = np.full((tf.RRC_TRIES, 4), 0.999, np.float32)
  assert tf.random_resized_crop_box(1000, 100, u, (0.9, 1.0), (3 / 4, 4 / 3)) == (433, 0, 133, 100)


def test_center_crop_box_is_resize_then_centre_crop():
  left, top, w, h = tf.center_crop_box(500, 375, 224, 0.875)
  assert (w, h) == (375 * 224 / 256, 375 * 224 / 256)
  assert left == pytest.approx((500 - w) / 2) and top == pytest.approx((375 - h) / 2)
  assert tf.center_crop_box(64, 32, 32, 1.0) == (16.0, 0.0, 32.0, 32.0)


def test_reduced_jpeg_decode_matches_full_decode():
  """Image.draft (DCT-domain downscale) only kicks in when >= size pixels remain: same picture."""
  rng = np.random.default_rng(0)
  coarse = rng.integers(0, 256, (6, 8, 3), np.uint8)
  image = Image.fromarray(coarse).resize((500, 375), Image.BICUBIC)
  buf = io.BytesIO()
  image.save(buf, 'JPEG', quality=95)
  crop = tf.Crop(64, train=False, crop_ratio=0.875)
  fast = np.empty((64, 64, 3), np.uint8)
  tf.decode_crop_resize(buf.getvalue(), 'x', crop, None, fast)
  left, top, w, h = tf.center_crop_box(500, 375, 64, 0.875)
  full = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert('RGB').resize(
      (64, 64), Image.BILINEAR, box=(left, top, left + w, top + h)))
  assert np.abs(fast.astype(int) - full).mean() < 3.0


def test_decode_handles_greyscale_cmyk_png_and_reports_corrupt_files(tree_dir):
  t = find_tree(tree_dir)
  out = np.empty((16, 16, 3), np.uint8)
  crop = tf.Crop(16, train=True, scale=(0.35, 1.0))
  u = np.random.default_rng(0).random((tf.RRC_TRIES, 4), dtype=np.float32)
  for i in range(4):  # RGB JPEG, greyscale JPEG, CMYK JPEG, PNG
    tf.decode_crop_resize(t.reader.read(i), t.reader.describe(i), crop, u, out)
    assert out.std() > 0
  with pytest.raises(DataError, match='bad.jpg: cannot decode'):
    tf.decode_crop_resize(b'\xff\xd8 not a jpeg', 'bad.jpg', crop, u, out)


def test_train_plan_is_deterministic_and_hosts_split_every_global_batch():
  ids = np.arange(100, 150)
  crop = tf.Crop(32, train=True)
  one = list(pl.train_requests(ids, 8, crop, seed=3, epoch=1))
  assert len(one) == 6  # 50 // 8, the partial batch dropped
  again = list(pl.train_requests(ids, 8, crop, seed=3, epoch=1))
  other = list(pl.train_requests(ids, 8, crop, seed=3, epoch=2))
  assert all(np.array_equal(a.indices, b.indices) and np.array_equal(a.uniforms, b.uniforms)
             for a, b in zip(one, again))
  assert not np.array_equal(np.concatenate([r.indices for r in one]), np.concatenate([r.indices for r in other]))
  seen = np.concatenate([r.indices for r in one])
  assert len(set(seen.tolist())) == 48 and set(seen.tolist()) <= set(ids.tolist())
  hosts = [list(pl.train_requests(ids, 8, crop, seed=3, epoch=1, process_index=h, process_count=4))
           for h in range(4)]
  for step, whole in enumerate(one):
    parts = [hosts[h][step] for h in range(4)]
    np.testing.assert_array_equal(np.concatenate([p.indices for p in parts]), whole.indices)
    np.testing.assert_array_equal(np.concatenate([p.uniforms for p in parts]), whole.uniforms)
    np.testing.assert_array_equal(np.concatenate([p.flips for p in parts]), whole.flips)


def test_eval_plan_pads_the_last_batch_and_drops_nothing():
  ids = np.arange(10, 33)
  requests = list(pl.eval_requests(ids, 8, tf.Crop(32, train=False)))
  flat = np.concatenate([r.indices for r in requests])
  assert len(requests) == 3 and flat[:23].tolist() == ids.tolist() and (flat[23:] == -1).all()
  halves = [list(pl.eval_requests(ids, 8, tf.Crop(32, train=False), process_index=h, process_count=2))
            for h in range(2)]
  np.testing.assert_array_equal(np.concatenate([np.concatenate([a.indices, b.indices])
                                                for a, b in zip(*halves)]), flat)


def _host_copy(images, labels, flips):
  return np.array(images), np.array(labels), np.array(flips)


def test_loader_in_workers_equals_loader_inline_and_marks_padding(tree_dir):
  t = find_tree(tree_dir)
  crop = tf.Crop(24, train=True, scale=(0.35, 1.0))
  requests = list(pl.train_requests(np.arange(t.num_train), 6, crop, seed=0, epoch=0))
  inline = pl.HostLoader(t.reader, num_workers=0)
  inline.start()
  pooled = pl.HostLoader(t.reader, num_workers=2, slots=2, max_rows_per_task=2)
  pooled.start()
  try:
    a = list(inline.iterate(requests, _host_copy))
    b = list(pooled.iterate(requests, _host_copy, prefetch=1))
    assert len(a) == len(b) == 3
    for (xa, ya, fa), (xb, yb, fb), r in zip(a, b, requests):
      np.testing.assert_array_equal(xa, xb)
      np.testing.assert_array_equal(ya, yb)
      np.testing.assert_array_equal(ya, t.reader.labels[r.indices])
      assert xa.shape == (6, 24, 24, 3) and xa.dtype == np.uint8 and xa.std() > 0
    assert pooled.stats.images == 18 and pooled.stats.cpu_seconds > 0 and pooled.stats.batches == 3
    val = np.arange(t.num_train, t.num_train + t.num_val)
    evals = list(pooled.iterate(pl.eval_requests(val, 4, tf.Crop(24, train=False)), _host_copy))
    labels = np.concatenate([y for _, y, _ in evals])
    np.testing.assert_array_equal(labels[:9], t.val_labels)
    assert (labels[9:] == -1).all() and (evals[-1][0][1:] == 0).all()
  finally:
    inline.close()
    pooled.close()


def test_decode_rows_keeps_order_drops_padding_and_matches_the_loader_batches(tree_dir):
  from dawnjax.data.imagenet import sources
  opened = sources.open_dataset('auto', tree_dir)
  assert (opened.num_val, opened.num_classes) == (9, 3) and opened.name.endswith('_as_imagenet_tree')
  ids = opened.val_ids()[::-1]  # any order: rows come back in the order asked for
  crop = tf.Crop(20, train=False, crop_ratio=0.8)
  whole, whole_labels = sources.decode_rows(opened.reader, ids, crop, num_workers=0, batch=16)
  stats = pl.PipelineStats()
  split, split_labels = sources.decode_rows(opened.reader, ids, crop, num_workers=2, batch=4, stats=stats)
  assert whole.shape == (9, 20, 20, 3) and whole.std() > 0 and stats.images == 9
  np.testing.assert_array_equal(split, whole)  # 4 + 4 + 1 rows, the last batch's 3 padding rows dropped
  np.testing.assert_array_equal(split_labels, whole_labels)
  np.testing.assert_array_equal(whole_labels, opened.reader.labels[ids])
  one, _ = sources.decode_rows(opened.reader, ids[3:4], crop, num_workers=0)
  np.testing.assert_array_equal(one[0], whole[3])


def test_loader_raises_decode_errors_in_the_consumer(tmp_path):
  root = make_tree(str(tmp_path / 'broken'), per_class=(2, 1))
  with open(os.path.join(root, 'train', 'bee', '000.JPEG'), 'wb') as f:
    f.write(b'\xff\xd8\xff garbage')
  t = find_tree(root)
  loader = pl.HostLoader(t.reader, num_workers=1)
  loader.start()
  try:
    requests = pl.eval_requests(np.arange(t.num_train), 2, tf.Crop(16, train=False))
    with pytest.raises(DataError, match='bee/000.JPEG: cannot decode'):
      list(loader.iterate(requests, _host_copy))
  finally:
    loader.close()
