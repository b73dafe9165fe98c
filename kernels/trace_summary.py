"""Where the accelerator time goes in a jax.profiler trace: busy vs span, kernel classes, top kernels.

Reads the `perfetto_trace.json.gz` that `--profile_epochs` / `--profile_steps` write next to the
TensorBoard profile (dawnjax passes `create_perfetto_trace=True`), so no TensorBoard or TensorFlow
is needed to read a profile on a headless device machine.

  python kernels/trace_summary.py RUN_DIR/tensorboard/profile [--top=25] [--per=STEPS|auto]

After the kernel tables it splits the idle time (host gaps) by gap length and names the kernel pairs
around the most of it: many ~1 us gaps between kernels call for fewer kernels, a few long ones for a
host that falls behind or waits.

`--per` divides every figure by a count (e.g. the number of training steps traced) to print
milliseconds per step; `--per=auto` takes the call count that most kernel time has (a kernel that
runs once per step is called once per traced step), so a recipe's batch size cannot skew it.
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer('top', 25, 'How many kernels to list by total time.')
flags.DEFINE_string('per', '1', "Divide times by this (e.g. traced steps) for per-step figures; 'auto': "
                    'the call count that most kernel time has.')
flags.DEFINE_string('hlo', None, 'Optimised HLO text (XLA_FLAGS=--xla_dump_to=DIR --xla_dump_hlo_as_text: '
                    '*after_optimizations.txt) to name the JAX operation behind each XLA kernel.')

# First match wins; the names are CUDA kernel names as CUPTI reports them (XLA names its own
# kernels after the fusion: loop_*, input_*, *_reduce_*; cuDNN/CUTLASS/cuBLAS keep theirs).
CLASSES = (
    ('convolution (cuDNN/CUTLASS)', r'xmma|cudnn|conv|implicit|cutlass|sm\d+_.*(fprop|dgrad|wgrad)'),
    ('matmul (cuBLAS/Triton)', r'gemm|gemv|cublas|triton|matmul|dot'),
    ('reduction', r'reduce|reduction'),
    ('scatter/gather', r'scatter|gather|select_and'),
    ('copy/memset/transpose', r'memcpy|memset|copy|transpose|Memcpy|Memset'),
    ('elementwise fusion', r'fusion|loop_|wrapped_'),
)


def classify(name: str) -> str:
  for label, pattern in CLASSES:
    if re.search(pattern, name, re.IGNORECASE):
      return label
  return 'other'


def load_events(profile_dir: str) -> list[dict]:
  paths = sorted(glob.glob(os.path.join(profile_dir, '**', 'perfetto_trace.json.gz'), recursive=True))
  if not paths:
    raise SystemExit(f'no perfetto_trace.json.gz under {profile_dir} (profile written without '
                     'create_perfetto_trace?)')
  with gzip.open(paths[-1]) as f:
    data = json.load(f)
  return data['traceEvents'] if isinstance(data, dict) else data


def device_kernels(events: list[dict]) -> list[dict]:
  """Complete events on accelerator processes (their name starts with /device:)."""
  names = {e['pid']: e['args']['name'] for e in events
           if e.get('ph') == 'M' and e.get('name') == 'process_name'}
  devices = {pid for pid, name in names.items() if name.startswith('/device:')}
  return [e for e in events if e.get('ph') == 'X' and e.get('pid') in devices and e.get('dur')]


def busy_microseconds(kernels: list[dict]) -> float:
  """Union of kernel intervals: time at least one kernel ran (overlapping streams counted once)."""
  spans = sorted((e['ts'], e['ts'] + e['dur']) for e in kernels)
  busy, end = 0.0, float('-inf')
  for start, stop in spans:
    if stop <= end:
      continue
    busy += stop - max(start, end)
    end = stop
  return busy


GAP_BUCKETS_US = (1, 2, 5, 10, 50, 1000)


def idle_gaps(kernels: list[dict]) -> list[tuple[float, str, str]]:
  """(length in us, the kernel that ended last, the kernel that starts) for every interval in which no
  kernel ran, between the first kernel's start and the last one's end."""
  gaps, end, last = [], None, ''
  for e in sorted(kernels, key=lambda e: e['ts']):
    if end is not None and e['ts'] > end:
      gaps.append((e['ts'] - end, last, e['name']))
    if end is None or e['ts'] + e['dur'] > end:
      end, last = e['ts'] + e['dur'], e['name']
  return gaps


def gap_table(kernels: list[dict], per: float, top: int = 8) -> str:
  """The idle time by gap length (many short gaps between kernels vs a few long waits on the host),
  and the kernel pairs around the most idle time."""
  gaps = idle_gaps(kernels)
  if not gaps:
    return 'no idle gaps'
  ms = lambda us: us / 1000.0 / per
  edges = (0,) + GAP_BUCKETS_US + (float('inf'),)
  lines = ['| idle gap | gaps | idle ms per ' + f'{per:g} |', '| --- | --- | --- |']
  for lo, hi in zip(edges, edges[1:]):
    inside = [g for g, _, _ in gaps if lo <= g < hi]
    if inside:
      label = f'>= {lo:g} us' if hi == float('inf') else f'{lo:g}-{hi:g} us'
      lines.append(f'| {label} | {len(inside)} | {ms(sum(inside)):.3f} |')
  pairs, counts = collections.Counter(), collections.Counter()
  short = lambda n: n if len(n) < 50 else n[:47] + '...'
  for g, before, after in gaps:
    pairs[(short(before), short(after))] += g
    counts[(short(before), short(after))] += 1
  lines += ['', f'| last kernel -> next kernel | gaps | idle ms per {per:g} | mean us |', '| --- | --- | --- | --- |']
  for (before, after), t in pairs.most_common(top):
    lines.append(f'| `{before}` -> `{after}` | {counts[(before, after)]} | {ms(t):.3f} | '
                 f'{t / counts[(before, after)]:.1f} |')
  return '\n'.join(lines)


def hlo_origins(hlo_text: str) -> dict[str, str]:
  """XLA instruction name -> the JAX op path it came from (its metadata op_name), shortened."""
  origins = {}
  for m in re.finditer(r'^\s*(?:ROOT )?%?([\w.-]+) = [^\n]*?metadata=\{op_name="([^"]+)"', hlo_text, re.M):
    path = re.sub(r'^jit\([^)]*\)/', '', m.group(2))
    origins.setdefault(m.group(1), path if len(path) < 110 else '...' + path[-107:])
  return origins


def infer_steps(kernels: list[dict]) -> int:
  """The call count that carries the most kernel time: the traced steps when a step's kernels run
  once per step (the usual case; kernels inside an inner loop run a multiple of it)."""
  calls, time = collections.Counter(e['name'] for e in kernels), collections.Counter()
  for e in kernels:
    time[e['name']] += e['dur']
  by_count = collections.Counter()
  for name, n in calls.items():
    by_count[n] += time[name]
  return by_count.most_common(1)[0][0] if by_count else 1


def summarise(kernels: list[dict], top: int, per: float, origins: dict[str, str] | None = None) -> str:
  if not kernels:
    return 'no device kernels in the trace (CPU-only run?)'
  span = max(e['ts'] + e['dur'] for e in kernels) - min(e['ts'] for e in kernels)
  busy = busy_microseconds(kernels)
  total = sum(e['dur'] for e in kernels)
  by_class, by_name, counts = collections.Counter(), collections.Counter(), collections.Counter()
  for e in kernels:
    by_class[classify(e['name'])] += e['dur']
    by_name[e['name']] += e['dur']
    counts[e['name']] += 1
  ms = lambda us: us / 1000.0 / per
  unit = 'ms' if per == 1.0 else f'ms per {per:g}'
  lines = [f'span {ms(span):.3f} {unit}, device busy {ms(busy):.3f} ({100 * busy / span:.1f}%), '
           f'host gaps {ms(span - busy):.3f}; kernel time {ms(total):.3f} in {len(kernels)} kernels', '',
           f'| kernel class | {unit} | share |', '| --- | --- | --- |']
  lines += [f'| {label} | {ms(t):.3f} | {100 * t / total:.1f}% |' for label, t in by_class.most_common()]
  origins = origins or {}
  lines += ['', f'| top kernels | calls | {unit} | share | from |', '| --- | --- | --- | --- | --- |']
  for name, t in by_name.most_common(top):
    short = name if len(name) < 90 else name[:87] + '...'
    lines.append(f'| `{short}` | {counts[name]} | {ms(t):.3f} | {100 * t / total:.1f}% | {origins.get(name, "")} |')
  return '\n'.join(lines)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError('usage: trace_summary.py PROFILE_DIR')
  origins = None
  if FLAGS.hlo:
    with open(FLAGS.hlo) as f:
      origins = hlo_origins(f.read())
  kernels = device_kernels(load_events(argv[1]))
  if FLAGS.per == 'auto':
    per = float(infer_steps(kernels))
    print(f'--per=auto: {per:g} (the call count that most kernel time has)')
  else:
    try:
      per = float(FLAGS.per)
    except ValueError:
      raise app.UsageError(f"--per={FLAGS.per!r}: expected a number or 'auto'") from None
  print(summarise(kernels, FLAGS.top, per, origins))
  print()
  print(gap_table(kernels, per))


if __name__ == '__main__':
  app.run(main)
