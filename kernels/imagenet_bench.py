"""ImageNet benchmark: model throughput, host JPEG pipeline, projected time to 93% top-5.

  python kernels/imagenet_bench.py --out_dir=/tmp/imagenet_bench            # all parts (~3 min, 1 H100)
  python kernels/imagenet_bench.py --parts=model --batch_sizes=128,256,384  # one part

Parts (each prints a table; everything also goes to <out_dir>/imagenet_bench.json):
  model       ResNet training throughput on device-resident synthetic uint8 batches, using the
              workload's own train step (on-device flip + normalise, label smoothing, SGD or LARS,
              BatchNorm statistics updated), data-parallel over every visible device: images/s
              per device, step time, MFU against dawnjax.hardware.peak_tflops.
  pipeline    Host decode + random-resized-crop throughput with Pillow: per core in one process,
              then with N worker processes through the real HostLoader (shared-memory slots and
              device_put included), on synthesised ImageNet-sized JPEGs (500x375 and 375x500,
              quality 90, smooth random content: a realistic decode cost) and, if --jpeg_tree
              exists, on that real tree's JPEGs. Says whether the host keeps one device fed at
              the model rate measured in `model`.
  projection  Projected training time of the cited recipes in experiments/imagenet/*.flags:
              sum over stages of epochs x 1,281,167 / images/s. A PROJECTION, not a measurement:
              rates for sizes not measured scale the measured rate by FLOPs ((224/size)^2),
              evaluation time and epoch-boundary stalls are left out.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import pathlib
import re
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

IMAGENET_TRAIN = 1281167
# Recipes projected in part (c): flagfile -> what the source reports.
PROJECTED_RECIPES = (
    ('goyal2017_resnet50_90ep.flags', 'Goyal et al. 2017, ImageNet in 1 hour: 76.3% top-1 after 90 epochs'),
    ('mlperf_lars_resnet50.flags', 'MLPerf ResNet-50 v1.5 LARS reference: 75.9% top-1 in 34-37 epochs (RCP, BS 3264)'),
    ('fastai_dawnbench_resnet50.flags', 'fast.ai DAWNBench 2018 (imagenet18 one_machine): 93% top-5 in 35 epochs'),
)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--parts', default='model,pipeline,projection',
                 help='comma-separated subset of model,pipeline,projection,scaling (scaling: not by '
                      'default; weak scaling over 1, 2, 4, ... of the visible devices)')
  p.add_argument('--out_dir', default='/tmp/imagenet_bench', help='where imagenet_bench.json goes')
  # model
  p.add_argument('--model', default='resnet50')
  p.add_argument('--width', type=int, default=64)
  p.add_argument('--image_size', type=int, default=224)
  p.add_argument('--batch_sizes', default='128,256', help='per-device batch sizes to measure')
  p.add_argument('--steps', type=int, default=20, help='timed steps per batch size')
  p.add_argument('--warmup_steps', type=int, default=5)
  p.add_argument('--optimizer', default='sgd', choices=('sgd', 'lars'))
  p.add_argument('--dtype', default='bfloat16')
  p.add_argument('--bn_impl', default='flax', help="'flax' or 'fused' (BatchNorm + ReLU, hand-written backward)")
  p.add_argument('--pool_impl', default='window', help="stem max-pool: 'window' or 'argmax' (fused backward)")
  p.add_argument('--space_to_depth', action='store_true',
                 help='Stem on a 2x2 space-to-depth input (4x4 conv instead of 7x7 on 3 channels)')
  p.add_argument('--ghost_batch_size', type=int, default=0,
                 help='BatchNorm statistics over groups of this many images (0: the global batch, one '
                      'all-reduce per BatchNorm layer across devices; the per-device batch: local BN)')
  p.add_argument('--num_classes', type=int, default=1000)
  p.add_argument('--cudnn_excluded_engines', default='0,1,19,45,28,22',
                 help='cuDNN engines kept out of XLA\'s convolution autotuning, as the ResNet-50 recipes set them '
                      '(shorter cold compiles, the same winners: dawnjax/cudnn_errata.py); empty: every engine')
  p.add_argument('--num_devices', type=int, default=None, help='default: all visible')
  p.add_argument('--model_budget_s', type=float, default=150.0,
                 help='part model starts no further batch size after this many seconds')
  # pipeline
  p.add_argument('--num_jpegs', type=int, default=256, help='synthesised ImageNet-sized JPEGs')
  p.add_argument('--pipeline_images', type=int, default=6144, help='images through the HostLoader')
  p.add_argument('--pipeline_batch', type=int, default=256)
  p.add_argument('--crop_sizes', default='128,224', help='train crop sizes for the per-core rates')
  p.add_argument('--num_workers', type=int, default=None, help='default: CPU cores - 1')
  p.add_argument('--jpeg_tree', default=str(REPO / '.data' / 'cifar10-jpeg.tar.gz'),
                 help='optional real class-folder tree (skipped if absent)')
  p.add_argument('--tree_crop', type=int, default=64, help='crop size for --jpeg_tree images')
  # projection
  p.add_argument('--model_rate', type=float, default=None,
                 help='images/s per device at --image_size for the projection when part model is '
                      'not run')
  p.add_argument('--size_rates', default='',
                 help='measured images/s per device at other sizes, e.g. 128:23433,288:4971 (H200); a stage '
                      'at such a size uses it instead of the FLOP-scaled --image_size rate')
  p.add_argument('--projection_devices', default='1,8', help='device counts to project for')
  return p.parse_args(argv)


def parse_size_rates(text: str) -> dict[int, float]:
  """'128:23433,288:4971' -> {128: 23433.0, 288: 4971.0}."""
  rates = {}
  for item in filter(None, (t.strip() for t in text.split(','))):
    size, _, rate = item.partition(':')
    try:
      size_px, per_s = int(size), float(rate)
    except ValueError:
      size_px, per_s = 0, 0.0
    if size_px <= 0 or not per_s > 0:
      raise SystemExit(f'--size_rates: {item!r} is not SIZE:IMAGES_PER_SECOND with positive numbers')
    rates[size_px] = per_s
  return rates


def stage_rate(size: int, base_size: int, base_rate: float, measured: dict[int, float]) -> tuple[float, str]:
  """Images/s per device at `size`: measured there if known, else the base rate FLOP-scaled."""
  if size in measured:
    return measured[size], 'measured'
  if size == base_size:
    return base_rate, 'measured'
  return base_rate * (base_size / size)**2, 'FLOP-scaled'


# ----------------------------------------------------------------------------------- helpers
def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
  cells = [[str(r.get(k, '')) for k, _ in columns] for r in rows]
  widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
            for i, (_, h) in enumerate(columns)]
  line = lambda vals: '  '.join(v.rjust(w) for v, w in zip(vals, widths))
  return '\n'.join([line([h for _, h in columns]), line(['-' * w for w in widths])] +
                   [line(c) for c in cells])


def fmt(x, digits=1):
  if x is None:
    return '-'
  return f'{x:,.{digits}f}'


# ----------------------------------------------------------------------------------- (a) model
def bench_model(args) -> dict:
  import jax
  import jax.numpy as jnp
  from dawnjax import flops as flops_lib, hardware, parallel
  from dawnjax.workloads import imagenet as wl

  mesh = parallel.make_mesh(args.num_devices)
  n_dev = mesh.devices.size
  device = parallel.device_description(mesh)
  peak, peak_source = hardware.peak_tflops(device['device_kind'])
  rep, split = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  results = []
  start_part = time.perf_counter()
  for per_device in [int(b) for b in args.batch_sizes.split(',') if b]:
    batch = per_device * n_dev
    if results and time.perf_counter() - start_part > args.model_budget_s:
      results.append({'per_device_batch': per_device, 'global_batch': batch,
                      'error': f'skipped: --model_budget_s={args.model_budget_s:g} spent'})
      continue
    recipe = wl.ImageNetRecipe(model=args.model, width=args.width, dtype=args.dtype,
                               stages=(f'0:{args.image_size}:{batch}',), epochs=1,
                               optimizer=args.optimizer, warmup_epochs=0.0, bn_impl=args.bn_impl,
                               space_to_depth=args.space_to_depth, pool_impl=args.pool_impl,
                               ghost_batch_size=args.ghost_batch_size)
    stages = wl.plan_stages(wl.parse_stages(recipe.stages, 1, recipe.min_scale), 1, batch * 1000)
    model = wl.model_from_recipe(recipe, args.num_classes)
    tx = wl.make_optimizer(recipe, wl.learning_rate_fn(recipe, stages))
    row = {'per_device_batch': per_device, 'global_batch': batch}
    try:
      start = time.perf_counter()
      init = jax.jit(wl.make_init_fn(model, tx, recipe), out_shardings=rep)
      step = jax.jit(wl.make_train_step(model, tx, recipe, args.num_classes),
                     in_shardings=(rep, rep, split, split, split), out_shardings=(rep, rep),
                     donate_argnums=(0, 1))
      state = init(np.uint32(0))
      shape = (batch, args.image_size, args.image_size, 3)
      images = jax.device_put(np.random.default_rng(0).integers(0, 256, shape, np.uint8), split)
      labels = jax.device_put(np.random.default_rng(1).integers(0, args.num_classes, batch).astype(np.int32), split)
      flips = jax.device_put(np.random.default_rng(2).random(batch) < 0.5, split)
      loss = jax.device_put(np.float32(0), rep)
      compiled = step.lower(state, loss, images, labels, flips).compile()
      row['compile_s'] = time.perf_counter() - start
      # Model FLOPs of the global step from the jaxpr (XLA's cost analysis misses cuDNN convolutions).
      row['model_flops_per_step'] = flops_lib.count_flops(step, state, loss, images, labels, flips)
      for _ in range(args.warmup_steps):
        state, loss = compiled(state, loss, images, labels, flips)
      jax.block_until_ready((state, loss))
      start = time.perf_counter()
      for _ in range(args.steps):
        state, loss = compiled(state, loss, images, labels, flips)
      jax.block_until_ready((state, loss))
      elapsed = time.perf_counter() - start
      if not math.isfinite(float(loss)):
        row['warning'] = 'loss is not finite'
      row['step_ms'] = 1000 * elapsed / args.steps
      row['images_per_s'] = batch * args.steps / elapsed
      row['images_per_s_per_device'] = row['images_per_s'] / n_dev
      flops = row['model_flops_per_step']
      row['tflops_per_device'] = flops / (elapsed / args.steps) / 1e12 / n_dev if flops else None
      row['mfu'] = row['tflops_per_device'] / peak if (peak and row['tflops_per_device']) else None
      try:
        row['peak_memory_gb'] = max(d.memory_stats().get('peak_bytes_in_use', 0) for d in jax.local_devices()) / 1e9
      except Exception:  # not every backend reports memory
        pass
      del state, images
    except Exception as e:  # e.g. out of memory at a large batch: report it, keep going
      row['error'] = f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'
    results.append(row)
    # One line per batch size as it finishes: a run cut off by a time limit still shows these.
    print(f"  batch/device {per_device}: {fmt(row.get('images_per_s_per_device'), 0)} img/s/device, step "
          f"{fmt(row.get('step_ms'))} ms, compile {fmt(row.get('compile_s'))} s {row.get('error', '')}", flush=True)
  best = max((r for r in results if 'images_per_s_per_device' in r),
             key=lambda r: r['images_per_s_per_device'], default=None)
  out = {'device': device, 'peak_tflops_per_device': peak, 'peak_source': peak_source,
         'model': args.model, 'width': args.width, 'image_size': args.image_size, 'dtype': args.dtype,
         'optimizer': args.optimizer, 'bn_impl': args.bn_impl, 'space_to_depth': args.space_to_depth, 'pool_impl': args.pool_impl,
         'ghost_batch_size': args.ghost_batch_size,
         'data': 'synthetic uint8, device-resident', 'runs': results,
         'best_images_per_s_per_device': best['images_per_s_per_device'] if best else None,
         'flops_note': "model FLOPs of the train step counted from its jaxpr (2 x multiply-adds of "
                       "every convolution and matmul, forward + backward); MFU = those FLOPs / "
                       "step time / peak"}
  print(f"\n(a) {args.model} training, {args.image_size} px, {args.dtype}, synthetic data, "
        f"{n_dev}x {device['device_kind']} (peak {peak} TFLOP/s/device: {peak_source})")
  rows = [{**r, 'step_ms': fmt(r.get('step_ms')), 'ips': fmt(r.get('images_per_s_per_device'), 0),
           'total': fmt(r.get('images_per_s'), 0), 'tf': fmt(r.get('tflops_per_device')),
           'mfu': f"{100 * r['mfu']:.1f}%" if r.get('mfu') else '-',
           'compile': fmt(r.get('compile_s')), 'mem': fmt(r.get('peak_memory_gb')),
           'error': r.get('error', r.get('warning', ''))} for r in results]
  print(table(rows, [('per_device_batch', 'batch/device'), ('step_ms', 'step ms'),
                     ('ips', 'img/s/device'), ('total', 'img/s total'), ('tf', 'TFLOP/s/device'),
                     ('mfu', 'MFU'), ('mem', 'peak GB'), ('compile', 'compile s'), ('error', 'note')]))
  return out


# ----------------------------------------------------------------------------------- (b) pipeline
def synthesize_jpegs(n: int, seed: int = 0) -> list[bytes]:
  """ImageNet-like JPEGs: 500x375 / 375x500, quality 90, smooth content plus mild noise (a
  random image would compress badly and decode slower than photographs)."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  blobs = []
  for i in range(n):
    w, h = (500, 375) if i % 4 else (375, 500)
    coarse = rng.integers(0, 256, (rng.integers(4, 12), rng.integers(4, 12), 3), np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.int16)
    image = np.clip(image + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, 'JPEG', quality=90)
    blobs.append(buf.getvalue())
  return blobs


def _per_core_rate(blobs: list[bytes], crop, seconds: float = 2.0) -> float:
  """Images/s of decode + crop + resize in this one process (a CPU-time rate)."""
  from dawnjax.data.imagenet.transforms import RRC_TRIES, UNIFORMS_PER_TRY, decode_crop_resize
  rng = np.random.default_rng(0)
  out = np.empty((crop.size, crop.size, 3), np.uint8)
  count, start = 0, time.process_time()
  while time.process_time() - start < seconds:
    for blob in blobs:
      uniforms = rng.random((RRC_TRIES, UNIFORMS_PER_TRY), dtype=np.float32) if crop.train else None
      decode_crop_resize(blob, 'synthetic', crop, uniforms, out)
      count += 1
  return count / (time.process_time() - start)


def _full_decode_rate(blobs: list[bytes], seconds: float = 1.5) -> float:
  from PIL import Image
  count, start = 0, time.process_time()
  while time.process_time() - start < seconds:
    for blob in blobs:
      with Image.open(io.BytesIO(blob)) as image:
        image.load()
      count += 1
  return count / (time.process_time() - start)


def _loader_rate(reader, n_ids: int, crop, batch: int, images: int, workers: int) -> dict:
  """Images/s through the real HostLoader (process pool, shared slots, device_put)."""
  import jax
  from dawnjax import parallel
  from dawnjax.data.imagenet import pipeline as pl
  mesh = parallel.make_mesh(1)
  split = parallel.batch_sharded(mesh)
  transfer = pl.make_transfer(split, split, copy_first=jax.devices()[0].platform == 'cpu')
  loader = pl.HostLoader(reader, num_workers=workers)
  start = time.perf_counter()
  loader.start()
  spawn = time.perf_counter() - start
  ids = np.resize(np.arange(n_ids), max(images, batch))
  requests = list(pl.train_requests(ids, batch, crop, seed=0, epoch=0))
  try:
    iterator = loader.iterate(requests, transfer)
    jax.block_until_ready(next(iterator))  # first batch: pipeline fill, not steady state
    start = time.perf_counter()
    done = 0
    for item in iterator:
      jax.block_until_ready(item)
      done += batch
    elapsed = time.perf_counter() - start
  finally:
    loader.close()
  return {'workers': workers, 'images': done, 'images_per_s': done / elapsed if elapsed > 0 else None,
          'per_core_in_pool': loader.stats.images / loader.stats.cpu_seconds if loader.stats.cpu_seconds else None,
          'spawn_s': spawn}


def bench_pipeline(args, model_rate: float | None) -> dict:
  from dawnjax.data.image_decode import available_cpus, default_decode_workers
  from dawnjax.data.imagenet.readers import PackedReader
  from dawnjax.data.imagenet.transforms import Crop
  cores = available_cpus()
  workers = default_decode_workers(args.num_workers)
  start = time.perf_counter()
  blobs = synthesize_jpegs(args.num_jpegs)
  out = {'cpu_cores': cores, 'workers': workers, 'num_jpegs': len(blobs),
         'mean_jpeg_kb': sum(map(len, blobs)) / len(blobs) / 1024,
         'synthesis_s': time.perf_counter() - start}
  rows = []
  out['full_decode_per_core'] = _full_decode_rate(blobs)
  rows.append({'what': 'full decode only (500x375, no crop)', 'rate': out['full_decode_per_core']})
  sizes = [int(s) for s in args.crop_sizes.split(',') if s]
  out['train_crop_per_core'] = {}
  for size in sizes:
    rate = _per_core_rate(blobs, Crop(size, train=True))
    out['train_crop_per_core'][size] = rate
    rows.append({'what': f'decode + random-resized-crop -> {size} px (draft)', 'rate': rate})
  out['eval_crop_per_core'] = _per_core_rate(blobs, Crop(224, train=False))
  rows.append({'what': 'decode + resize 256 + centre crop 224 (draft)', 'rate': out['eval_crop_per_core']})

  with tempfile.TemporaryDirectory() as tmp:
    packed = os.path.join(tmp, 'jpegs.bin')
    with open(packed, 'wb') as f:
      for b in blobs:
        f.write(b)
    sizes_arr = np.asarray([len(b) for b in blobs], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes_arr)[:-1]])
    reader = PackedReader(packed, offsets, sizes_arr, np.asarray([f'{i}.jpg' for i in range(len(blobs))], np.bytes_),
                          np.zeros(len(blobs), np.int32))
    crop_size = args.image_size if args.image_size in sizes else sizes[-1]
    pool = _loader_rate(reader, len(blobs), Crop(crop_size, train=True), args.pipeline_batch,
                        args.pipeline_images, workers)
  out['loader'] = {**pool, 'crop': crop_size}
  rows.append({'what': f'HostLoader, {workers} workers, {crop_size} px, batch {args.pipeline_batch} '
                       '(total, incl. device_put)', 'rate': pool['images_per_s'], 'total': True})

  tree = pathlib.Path(args.jpeg_tree) if args.jpeg_tree else None
  if tree is not None and tree.exists():
    from dawnjax.data.imagenet.tree import find_tree
    t = find_tree(str(tree))
    sample = [t.reader.read(i) for i in range(0, t.num_train, max(1, t.num_train // 512))][:512]
    rate = _per_core_rate(sample, Crop(args.tree_crop, train=True, scale=(0.35, 1.0)))
    out['real_tree'] = {'path': str(tree), 'name': t.name, 'per_core': rate, 'crop': args.tree_crop,
                        'mean_jpeg_kb': sum(map(len, sample)) / len(sample) / 1024}
    rows.append({'what': f'real tree {t.name}: decode + RRC -> {args.tree_crop} px', 'rate': rate})
  else:
    out['real_tree'] = None

  per_core = out['train_crop_per_core'].get(crop_size)
  if model_rate:
    out['model_rate_per_device'] = model_rate
    out['cores_needed_per_device'] = model_rate / per_core if per_core else None
    out['keeps_one_device_fed'] = bool(pool['images_per_s'] and pool['images_per_s'] >= model_rate)
  print(f'\n(b) host JPEG pipeline, Pillow, {cores} CPU cores, {len(blobs)} synthesised '
        f"{out['mean_jpeg_kb']:.0f} KB JPEGs")
  print(table([{'what': r['what'], 'rate': fmt(r['rate'], 0), 'unit': 'img/s total' if r.get('total') else 'img/s per core'}
               for r in rows], [('what', 'measurement'), ('rate', 'rate'), ('unit', 'unit')]))
  if model_rate:
    print(f"model needs {model_rate:,.0f} img/s per device at {args.image_size} px: "
          f"{out['cores_needed_per_device']:.1f} cores of this CPU per device; the {workers}-worker "
          f"loader gives {pool['images_per_s']:,.0f} img/s -> "
          f"{'keeps one device fed' if out['keeps_one_device_fed'] else 'does NOT keep one device fed (host-bound)'}")
  return out


# ----------------------------------------------------------------------------------- (c) projection
def read_flagfile(path: pathlib.Path) -> dict[str, str]:
  flags = {}
  for line in path.read_text().splitlines():
    line = line.strip()
    if line.startswith('--') and '=' in line:
      key, value = line[2:].split('=', 1)
      flags[key] = value
  return flags


def project(args, model_rate: float | None, pipeline: dict | None) -> dict:
  from dawnjax.workloads import imagenet as wl
  if not model_rate:
    print('\n(c) projection skipped: no model rate (run part model or pass --model_rate)')
    return {'skipped': 'no model rate'}
  base_size = args.image_size
  measured = parse_size_rates(args.size_rates)
  host_rates = (pipeline or {}).get('train_crop_per_core') or {}
  host_total = ((pipeline or {}).get('loader') or {}).get('images_per_s')
  host_crop = ((pipeline or {}).get('loader') or {}).get('crop')
  rows, out = [], []
  for name, source in PROJECTED_RECIPES:
    path = REPO / 'experiments' / 'imagenet' / name
    if not path.exists():
      continue
    flags = read_flagfile(path)
    epochs = int(flags.get('epochs', 90))
    stages = wl.parse_stages(flags.get('stages', '0:224:256').split(','), epochs, 0.08)
    model = flags.get('model', 'resnet50')
    for n_dev in [int(d) for d in args.projection_devices.split(',') if d]:
      seconds, host_seconds, how = 0.0, 0.0, []
      for i, s in enumerate(stages):
        end = stages[i + 1].start_epoch if i + 1 < len(stages) else epochs
        per_device, kind = stage_rate(s.size, base_size, model_rate, measured)
        rate = per_device * n_dev
        how.append(f'{s.size} px {kind}')
        seconds += (end - s.start_epoch) * IMAGENET_TRAIN / rate
        if host_total and host_crop:
          # This host's measured loader rate, scaled by the per-core rate at the stage's size.
          scale = host_rates.get(s.size, host_rates.get(host_crop, 1.0)) / host_rates.get(host_crop, 1.0)
          host_seconds += (end - s.start_epoch) * IMAGENET_TRAIN / min(rate, host_total * scale)
      row = {'recipe': name.replace('.flags', ''), 'model': model, 'epochs': epochs,
             'devices': n_dev, 'hours_model_bound': seconds / 3600,
             'hours_with_this_host': host_seconds / 3600 if host_seconds else None, 'source': source,
             'stage_rates': ', '.join(dict.fromkeys(how))}
      out.append(row)
      rows.append({**row, 'h': fmt(row['hours_model_bound'], 2),
                   'hh': fmt(row['hours_with_this_host'], 2)})
  others = ''.join(f', {r:,.0f} at {k} px' for k, r in sorted(measured.items()))
  print(f'\n(c) PROJECTED training time (not measured): epochs x {IMAGENET_TRAIN:,} / rate; rate = '
        f'{model_rate:,.0f} img/s/device at {base_size} px{others} (measured), other sizes x ({base_size}/size)^2 '
        '(resnet50 rates used for every recipe), evaluation excluded')
  print(table(rows, [('recipe', 'recipe'), ('epochs', 'epochs'), ('devices', 'devices'),
                     ('h', 'hours (model-bound)'), ('hh', 'hours (1 host feeding all)'),
                     ('stage_rates', 'stage rates'), ('source', 'source')]))
  return {'rows': out, 'rate_per_device_at_base': model_rate, 'base_size': base_size,
          'measured_size_rates': measured,
          'note': 'projection: per-stage rates measured where given (--size_rates), else FLOP-scaled from the '
                  'base size; no evaluation time, no stalls; "1 host feeding all" caps the rate at this host\'s '
                  'measured loader throughput'}


# ----------------------------------------------------------------------------------- (d) scaling
def bench_scaling(args) -> dict:
  """Part (a) at the first --batch_sizes per device on 1, 2, 4, ... visible devices of this host.

  Weak scaling (the per-device batch stays fixed, as data-parallel recipes scale): efficiency at N
  devices = images/s per device at N / images/s per device at 1. Gradients are all-reduced over
  the 'data' mesh axis by XLA (NCCL on GPUs) inside the compiled step.
  """
  import jax
  visible = len(jax.devices())
  counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= visible]
  per_device = args.batch_sizes.split(',')[0]
  rows = []
  for n in counts:
    sub = argparse.Namespace(**{**vars(args), 'num_devices': n, 'batch_sizes': per_device,
                                'model_budget_s': float('inf')})
    run = bench_model(sub)['runs'][0]
    rows.append({'devices': n, **{k: run.get(k) for k in ('images_per_s', 'images_per_s_per_device',
                                                           'step_ms', 'mfu', 'error')}})
  base = rows[0].get('images_per_s_per_device') if rows else None
  for r in rows:
    ips = r.get('images_per_s_per_device')
    r['efficiency'] = ips / base if (ips and base) else None
  print(f"\n(d) weak scaling, {args.model} {args.image_size} px, {per_device} images per device")
  print(table([{**r, 'ips': fmt(r['images_per_s_per_device'], 0), 'total': fmt(r['images_per_s'], 0),
                'eff': f"{100 * r['efficiency']:.1f}%" if r['efficiency'] else '-',
                'step': fmt(r['step_ms'])} for r in rows],
              [('devices', 'devices'), ('step', 'step ms'), ('ips', 'img/s/device'), ('total', 'img/s total'),
               ('eff', 'efficiency'), ('error', 'note')]))
  return {'per_device_batch': int(per_device), 'runs': rows,
          'rule': 'efficiency = images/s per device at N / at 1 device, same per-device batch'}


def main(argv=None) -> int:
  args = parse_args(argv)
  parts = {p.strip() for p in args.parts.split(',') if p.strip()}
  unknown = parts - {'model', 'pipeline', 'projection', 'scaling'}
  if unknown:
    print(f'error: unknown --parts {sorted(unknown)}', file=sys.stderr)
    return 2
  os.makedirs(args.out_dir, exist_ok=True)
  sys.stdout.reconfigure(line_buffering=True)  # a run cut off by a time limit keeps its output
  from dawnjax import cudnn_errata
  try:  # before JAX starts: cuDNN reads the errata file once
    errata_path = cudnn_errata.install(cudnn_errata.parse_engines(
        args.cudnn_excluded_engines.split(',') if args.cudnn_excluded_engines else []))
  except cudnn_errata.ConfigError as err:
    print(f'error: {err}', file=sys.stderr)
    return 2
  import jax
  report = {'argv': sys.argv[1:], 'jax': jax.__version__, 'devices': [str(d) for d in jax.devices()],
            'cudnn_errata': errata_path or os.environ.get(cudnn_errata.ENV),  # or the user's own file
            'started': time.strftime('%Y-%m-%d %H:%M:%S')}
  print(f"jax {jax.__version__}, devices: {', '.join(report['devices'])}")
  path = os.path.join(args.out_dir, 'imagenet_bench.json')
  start = time.perf_counter()

  def save():  # after every part: a later part failing or timing out loses nothing measured
    report['total_seconds'] = time.perf_counter() - start
    with open(path, 'w') as f:
      json.dump(report, f, indent=1, default=str)

  model_rate = args.model_rate
  if 'model' in parts:
    report['model'] = bench_model(args)
    model_rate = report['model']['best_images_per_s_per_device'] or model_rate
    save()
  if 'pipeline' in parts:
    report['pipeline'] = bench_pipeline(args, model_rate)
    save()
  if 'projection' in parts:
    report['projection'] = project(args, model_rate, report.get('pipeline'))
    save()
  if 'scaling' in parts:
    report['scaling'] = bench_scaling(args)
  save()
  print(f'\nwrote {path} ({report["total_seconds"]:.0f} s)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
