"""Where one batch-1 call's time goes, from a profiler trace of the calls (issue 6).

kernels/latency_probe.py times whole calls; this traces them. Each call runs inside a named
annotation, so the trace holds, on one clock, the call's host span and the device kernels it
launched. Per call it splits the wall time into:

  launch   annotation start -> the first kernel starts (Python, JAX's and PJRT's dispatch, the
           command-buffer launch, the GPU picking the work up)
  device   first kernel start -> last kernel end (kernels and the gaps between them)
  notice   last kernel end -> annotation end (the host learning that the work is done, and any
           work after the wait inside the annotation)

and lists the host-side events inside the calls (PJRT, thunks, command buffers) by time per call, and the
device span's gaps by the pair of kernels around them (which transitions hold the span beyond the kernels).
Rows, each traced after --warmup untraced calls, and timed without the profiler twice (rows in order,
then reversed) for the 'untraced' column:

  noop       jit(x + 1) on a device-resident image, waited on
  served     the served classify (weights compiled in, as the benchmark's 'auto'), waited on
  readback   the benchmark's 'device' mode: served + the label read back after the clock stops
             (the read-back has its own annotation, outside the timed part)
  *_spin     the same, waiting by polling the result's readiness (latency.wait_for(..., 'spin'))
  host*      whole requests as the benchmark's host modes make them (--host_modes; latency.request):
             'host' uploads, calls and downloads; 'host_pinned' one program reading and writing pinned
             host memory; 'host_staged' the same through one fixed staging buffer; 'host_graph' with
             the program's own copy steps in its CUDA graph (host_graph_spin: the host polls the
             label's sequence word instead of the runtime's wait; with several --graph_io_copies, one
             pair of rows per way of copying, e.g. host_graph_kernel_spin)

The served function is the CIFAR-10 recipe's (--flagfile) with fresh weights (latency does not depend on
their values), or with --checkpoint a trained image model's as the benchmark serves it (ImageNet: top-5,
BatchNorm folded unless --nofold_batchnorm). Each row also lists its device kernels by time per call.
XLA flags come from the environment: run it with XLA_FLAGS=--xla_gpu_enable_command_buffer=+CONVOLUTION
to match the benchmark's default.

  python3 kernels/latency_trace.py --flagfile=experiments/cifar10/fast.flags --trace_dir=/tmp/lt
  python3 kernels/latency_trace.py --checkpoint=RUN_DIR --trace_dir=/tmp/lt   # e.g. a ResNet-50 run
"""
import collections
import importlib
import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trace_summary  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This script's flags and the CIFAR-10 recipe's, defined only when it runs: a test imports the trace
  arithmetic alone, in a process whose other modules define flags of the same names."""
  importlib.import_module('dawnjax.experiments.cifar10')  # defines the recipe flags
  flags.DEFINE_integer('calls', 300, 'Traced calls per row (and as many timed without the profiler).')
  flags.DEFINE_integer('warmup', 300, 'Untraced calls before each row.')
  flags.DEFINE_string('trace_dir', '/tmp/latency_trace', 'Where the profiler writes its trace.')
  flags.DEFINE_string('json', None, 'Write the figures here too.')
  flags.DEFINE_string('checkpoint', None, 'Serve this trained image model (a training --output_dir or its '
                      'model/) instead of the CIFAR-10 recipe with fresh weights.')
  flags.DEFINE_list('host_modes', ['host', 'host_pinned', 'host_staged', 'host_graph'], 'Also trace whole '
                    "requests made as the benchmark's --latency_modes of these names make them (image in host "
                    "memory to label in host memory); host_graph also with --latency_wait=spin.")
  flags.DEFINE_list('graph_io_copies', ['kernel'], "host_graph's ways of copying (graph_io.COPIES; default the "
                    "benchmark's), each its own rows when more than one is listed.")
  flags.DEFINE_bool('fold_batchnorm', True, 'With --checkpoint: fold BatchNorms where the task can (as the '
                    'inference benchmark does by default).')


PREFIX = 'latency_call_'  # no ':' (TraceMe reads what follows one as metadata)


def host_and_device(events: list[dict]) -> tuple[list[dict], list[dict]]:
  """(host complete events, device kernels) of a perfetto trace."""
  kernels = trace_summary.device_kernels(events)
  device_ids = {e['pid'] for e in kernels}
  host = [e for e in events if e.get('ph') == 'X' and e.get('pid') not in device_ids and 'dur' in e]
  return host, kernels


def split_calls(events: list[dict], row: str) -> dict:
  """Per-call means (us) of a row's annotated calls: wall, launch, device span, notice, kernel time
  and count; and the host events inside the calls by total time per call.

  A kernel belongs to the call whose annotation it starts in (each call waits for its result
  inside the annotation). Calls that launched no kernel (a CPU
  run) count in `calls` but leave the device columns empty."""
  host, kernels = host_and_device(events)
  calls = sorted((e for e in host if e['name'] == PREFIX + row), key=lambda e: e['ts'])
  if not calls:
    raise ValueError(f'no annotated calls named {PREFIX + row!r} in the trace')
  kernels = sorted(kernels, key=lambda e: e['ts'])
  per_call = [[] for _ in calls]
  k = 0
  for i, c in enumerate(calls):
    while k < len(kernels) and kernels[k]['ts'] < c['ts']:
      k += 1
    while k < len(kernels) and kernels[k]['ts'] < c['ts'] + c['dur']:
      per_call[i].append(kernels[k])
      k += 1
  mean = lambda xs: sum(xs) / len(xs) if xs else None
  with_kernels = [(c, ks) for c, ks in zip(calls, per_call) if ks]
  first = lambda ks: min(e['ts'] for e in ks)
  last = lambda ks: max(e['ts'] + e['dur'] for e in ks)
  out = {'calls': len(calls), 'calls_with_kernels': len(with_kernels),
         'wall_us': mean([c['dur'] for c in calls]),
         'launch_us': mean([first(ks) - c['ts'] for c, ks in with_kernels]),
         'device_us': mean([last(ks) - first(ks) for _, ks in with_kernels]),
         'notice_us': mean([c['ts'] + c['dur'] - last(ks) for c, ks in with_kernels]),
         'kernel_busy_us': mean([trace_summary.busy_microseconds(ks) for _, ks in with_kernels]),
         'kernels_per_call': mean([len(ks) for _, ks in with_kernels])}
  # Host events that start inside a call (any thread): what the runtime does per call.
  inside = collections.Counter()
  counts = collections.Counter()
  c = 0
  for e in sorted(host, key=lambda e: e['ts']):
    if e['name'].startswith(PREFIX):
      continue
    while c < len(calls) and calls[c]['ts'] + calls[c]['dur'] < e['ts']:
      c += 1
    if c < len(calls) and calls[c]['ts'] <= e['ts']:
      inside[e['name']] += e['dur']
      counts[e['name']] += 1
  out['host_events'] = [{'name': name, 'us_per_call': t / len(calls), 'per_call': counts[name] / len(calls)}
                        for name, t in inside.most_common()]
  # Device kernels by name: which ones hold the device span.
  by_kernel, kernel_counts = collections.Counter(), collections.Counter()
  for _, ks in with_kernels:
    for e in ks:
      by_kernel[e['name']] += e['dur']
      kernel_counts[e['name']] += 1
  per = max(1, len(with_kernels))
  out['kernels'] = [{'name': name, 'us_per_call': t / per, 'per_call': kernel_counts[name] / per}
                    for name, t in by_kernel.most_common()]
  # The span's gaps by the kernels on either side: where the device waits between the graph's nodes.
  gaps, gap_counts = collections.Counter(), collections.Counter()
  for _, ks in with_kernels:
    for gap, before, after in trace_summary.idle_gaps(ks):
      pair = f'{short_name(before)} -> {short_name(after)}'
      gaps[pair] += gap
      gap_counts[pair] += 1
  out['gaps'] = [{'name': name, 'us_per_call': t / per, 'per_call': gap_counts[name] / per}
                 for name, t in gaps.most_common()]
  return out


def short_name(kernel: str, width: int = 40) -> str:
  return kernel if len(kernel) <= width else kernel[:width - 3] + '...'


def table(rows: dict[str, dict], untraced: dict[str, float], top: int) -> str:
  fmt = lambda v: f'{v:8.1f}' if v is not None else f'{"-":>8}'
  w = max(14, *(len(name) for name in rows))
  lines = [f'{"row":<{w}} {"untraced":>8} {"wall":>8} {"launch":>8} {"device":>8} {"notice":>8} {"busy":>8} '
           f'{"kernels":>8}   (us per call; wall/launch/device/notice traced)']
  for name, r in rows.items():
    lines.append(f'{name:<{w}} {fmt(untraced[name])} {fmt(r["wall_us"])} {fmt(r["launch_us"])} '
                 f'{fmt(r["device_us"])} {fmt(r["notice_us"])} {fmt(r["kernel_busy_us"])} {fmt(r["kernels_per_call"])}')
  for name, r in rows.items():
    for what, key in (('host events inside the calls', 'host_events'), ('device kernels', 'kernels'),
                      ('gaps in the device span, by the kernels around them', 'gaps')):
      if not r.get(key):
        continue
      lines += ['', f'{name}: {what} (us per call, count per call)']
      for e in r[key][:top]:
        short = e['name'] if len(e['name']) < 80 else e['name'][:77] + '...'
        lines.append(f'  {e["us_per_call"]:8.1f} {e["per_call"]:5.1f}  {short}')
  return '\n'.join(lines)


def main(argv):
  del argv
  import jax
  import numpy as np

  from dawnjax.inference import latency

  dev = jax.devices()[0]
  n = FLAGS.calls
  fn, variables, item_shape, what = served_model()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (n, *item_shape), dtype=np.uint8)
  items = [jax.device_put(images[i:i + 1], dev) for i in range(n)]
  jax.block_until_ready(items)
  variables = jax.device_put(variables, dev)
  served_in = latency.BatchOnePrograms(fn, variables, item_shape, np.uint8, dev, 'constants')
  graph_ways = {c: latency.BatchOnePrograms(fn, variables, item_shape, np.uint8, dev, 'constants', c)
                for c in FLAGS.graph_io_copies}
  served_device = served_in('device')
  noop = jax.jit(lambda x: x + 1).lower(items[0]).compile()

  served_call = lambda i: served_device(None, items[i]).block_until_ready()
  spin_call = lambda i: latency.wait_for(served_device(None, items[i]), 'spin')
  calls = {'noop': lambda i: noop(items[i]).block_until_ready(), 'served': served_call, 'readback': served_call,
           'noop_spin': lambda i: latency.wait_for(noop(items[i]), 'spin'), 'served_spin': spin_call,
           'readback_spin': spin_call}
  # Whole requests, image in host memory to label in host memory, as the benchmark's host modes make them.
  for mode in FLAGS.host_modes:
    if mode != 'host_graph':
      calls[mode] = latency.request(served_in(latency.PROGRAM[mode]), None, images, dev, mode)
      continue
    for copies, programs in graph_ways.items():
      row = mode if len(graph_ways) == 1 else f'{mode}_{copies}'
      program = programs(latency.PROGRAM[mode])
      calls[row] = latency.request(program, None, images, dev, mode)
      calls[f'{row}_spin'] = latency.request(program, None, images, dev, mode, 'spin')
  # Untraced: each row twice, in order and then in reverse, so that drift over the run hits both ends alike.
  untraced = {name: [] for name in calls}
  for name in list(calls) + list(reversed(calls)):
    call = calls[name]
    for i in range(FLAGS.warmup):
      np.asarray(call(i % n))
    total = 0
    with latency.GcPaused():
      for i in range(n):
        start = time.perf_counter_ns()
        out = call(i)
        total += time.perf_counter_ns() - start
        if name.startswith('readback'):
          np.asarray(out)
    untraced[name].append(total / 1e3 / n)
  untraced = {name: sum(v) / len(v) for name, v in untraced.items()}
  # Without the Python tracer, whose per-function events would inflate the host side of each call.
  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0
  jax.profiler.start_trace(FLAGS.trace_dir, create_perfetto_trace=True, profiler_options=options)
  with latency.GcPaused():
    for name, call in calls.items():
      for i in range(n):
        with jax.profiler.TraceAnnotation(PREFIX + name):
          out = call(i)
        if name.startswith('readback'):
          with jax.profiler.TraceAnnotation('readback_after_clock'):
            np.asarray(out)
  jax.profiler.stop_trace()
  events = trace_summary.load_events(FLAGS.trace_dir)
  rows = {name: split_calls(events, name) for name in calls}
  print(f'latency trace of {what} on {dev.device_kind}, jax {jax.__version__}, {n} calls per row; '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  print('untraced = the same calls timed one by one without the profiler, the mean of two passes (rows in order, '
        "then reversed; readback: the result read back after each call's clock stops, as in the benchmark's "
        "'device' mode)")
  print(table(rows, untraced, FLAGS.top))  # --top: trace_summary's flag (host events listed per row)
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump({'device': dev.device_kind, 'xla_flags': os.environ.get('XLA_FLAGS', ''), 'calls': n,
                 'untraced_us': untraced, 'rows': rows}, f, indent=1)


def served_model():
  """(classify, variables, item shape, description) of what the rows serve."""
  import jax
  import jax.numpy as jnp
  from dawnjax.inference import models
  if FLAGS.checkpoint:
    from dawnjax.inference import export
    saved = export.load_model(FLAGS.checkpoint)
    manifest = saved.manifest
    spec = manifest.get('input') or {}
    if spec.get('dtype') != 'uint8' or len(spec.get('shape') or []) != 3:
      raise SystemExit(f'--checkpoint: {manifest["task"]} serves {spec}; this trace serves uint8 images only')
    fold = models.wants_folding(manifest['task'], FLAGS.fold_batchnorm)
    fn = models.served_fn(manifest, fold_batchnorm=fold)
    what = f'{manifest["task"]} {manifest.get("model", "")}' + (' (BatchNorm folded)' if fold else '')
    return fn, saved.variables, tuple(spec['shape']), what
  from dawnjax.experiments import cifar10 as cifar_entry
  from dawnjax.workloads.cifar10 import build_model, inference_apply
  recipe = cifar_entry.recipe_from_flags()
  model = build_model(recipe)
  variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3), jnp.dtype(recipe.dtype)), train=False))(
      jax.random.key(0))
  return models.classifier(inference_apply(recipe)), variables, (32, 32, 3), 'the CIFAR-10 recipe (fresh weights)'


if __name__ == '__main__':
  define_flags()
  app.run(main)
