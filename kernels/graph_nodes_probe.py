"""What one more node in a batch-1 program's CUDA graph costs: on the host (launching it) and on the device (issue 6).

The polled CIFAR-10 request (kernels/latency_trace.py, row host_graph_spin) spends ~46-61 us launching and ~95-105
us of device span for ~59 us of kernels in 21 graph nodes; ResNet-50's 68-node graph launches in 178-211 us traced.
Both look proportional to the node count, but traced launch times carry the profiler's own per-node cost. This
probe measures chains of N nodes without the profiler, N over --nodes, two node kinds:

  elementwise  N loop fusions on a CIFAR-sized activation (1x32x32x64 bf16), kept apart by optimization barriers
  conv         N cuDNN 3x3 convolutions, 64 -> 64 channels at 16x16 (block 2's shape at batch 1), weights
               compiled in as the benchmark compiles them

and per chain, untraced, the mean over --calls calls of:

  dispatch  the call's return to Python (the host's whole launch: JAX, PJRT, the thunks, cuGraphLaunch);
            the result is waited for after the clock stops
  request   the call and a polling wait for its result (latency.wait_for(..., 'spin')), as host_graph waits

A short trace of each chain then gives its kernels per call, kernel busy time and device span, so the device
span's gaps are span - busy. The table's last lines fit request, dispatch and gap per node (least squares over
N >= --fit_from). Run it twice, with command buffers on (the benchmark's XLA flags) and off, to see what the
graph saves:

  XLA_FLAGS=--xla_gpu_enable_command_buffer=+CONVOLUTION python3 kernels/graph_nodes_probe.py --json=on.json
  XLA_FLAGS=--xla_gpu_enable_command_buffer= python3 kernels/graph_nodes_probe.py --json=off.json
"""
import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latency_trace  # noqa: E402
import trace_summary  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined only when the script runs: a test imports the fit alone, in a process whose other modules define
  flags of the same names."""
  flags.DEFINE_list('nodes', ['1', '2', '4', '8', '16', '32', '64'], 'Chain lengths (nodes per program).')
  flags.DEFINE_list('kinds', ['elementwise', 'conv'], 'Node kinds: elementwise, conv.')
  flags.DEFINE_integer('calls', 500, 'Timed calls per chain and measure.')
  flags.DEFINE_integer('warmup', 200, 'Untimed calls before each measure.')
  flags.DEFINE_integer('traced_calls', 100, 'Traced calls per chain.')
  flags.DEFINE_integer('fit_from', 4, 'Fit the per-node costs over chains of at least this many nodes.')
  flags.DEFINE_string('trace_dir', '/tmp/graph_nodes_trace', 'Where the profiler writes its trace.')
  flags.DEFINE_string('json', None, 'Write the figures here too.')

SHAPES = {'elementwise': (1, 32, 32, 64), 'conv': (1, 16, 16, 64)}


def chain(kind: str, n: int):
  """A function of one activation whose program runs n nodes of `kind` one after another."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  if kind == 'elementwise':
    def fn(x):
      for i in range(n):
        # The barrier keeps XLA from fusing the steps into one kernel.
        x = jax.lax.optimization_barrier(jnp.tanh(x * jnp.bfloat16(1.01) + jnp.bfloat16(0.01 * i)))
      return x
    return fn
  if kind == 'conv':
    rng = np.random.default_rng(0)
    weights = [jnp.asarray(rng.normal(0, 0.05, (3, 3, 64, 64)), jnp.bfloat16) for _ in range(n)]

    def fn(x):
      for w in weights:
        x = jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      return x
    return fn
  raise SystemExit(f'--kinds: unknown kind {kind!r} (elementwise, conv)')


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
  """(slope, intercept) of the least-squares line through (n, value) points."""
  n = len(points)
  mx = sum(x for x, _ in points) / n
  my = sum(y for _, y in points) / n
  sxx = sum((x - mx) ** 2 for x, _ in points)
  slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
  return slope, my - slope * mx


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import numpy as np

  from dawnjax.inference import latency

  dev = jax.devices()[0]
  nodes = sorted(int(v) for v in FLAGS.nodes)
  programs = {}
  for kind in FLAGS.kinds:
    x = jax.device_put(jnp.asarray(np.random.default_rng(1).normal(0, 1, SHAPES[kind]), jnp.bfloat16), dev)
    for n in nodes:
      programs[kind, n] = (jax.jit(chain(kind, n)).lower(x).compile(), x)

  def timed(call, wait):
    for _ in range(FLAGS.warmup):
      latency.wait_for(call(), 'spin')
    total = 0
    with latency.GcPaused():
      for _ in range(FLAGS.calls):
        start = time.perf_counter_ns()
        out = call()
        if wait:
          latency.wait_for(out, 'spin')
        total += time.perf_counter_ns() - start
        if not wait:
          out.block_until_ready()
    return total / 1e3 / FLAGS.calls

  rows = {}
  order = list(programs) + list(reversed(programs))  # each chain twice, so drift hits both ends alike
  for key in order:
    compiled, x = programs[key]
    call = lambda compiled=compiled, x=x: compiled(x)
    row = rows.setdefault(key, {'dispatch': [], 'request': []})
    row['dispatch'].append(timed(call, wait=False))
    row['request'].append(timed(call, wait=True))

  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0
  jax.profiler.start_trace(FLAGS.trace_dir, create_perfetto_trace=True, profiler_options=options)
  with latency.GcPaused():
    for (kind, n), (compiled, x) in programs.items():
      for _ in range(FLAGS.traced_calls):
        with jax.profiler.TraceAnnotation(f'{latency_trace.PREFIX}{kind}{n}'):
          latency.wait_for(compiled(x), 'spin')
  jax.profiler.stop_trace()
  events = trace_summary.load_events(FLAGS.trace_dir)

  results = []
  for (kind, n) in programs:
    traced = latency_trace.split_calls(events, f'{kind}{n}')
    host = {e['name']: e['us_per_call'] for e in traced['host_events']}
    launch = sum(v for name, v in host.items() if name.startswith('cuGraphLaunch'))
    row = rows[kind, n]
    results.append({'kind': kind, 'nodes': n, 'dispatch_us': sum(row['dispatch']) / 2,
                    'request_us': sum(row['request']) / 2, 'kernels': traced['kernels_per_call'],
                    'busy_us': traced['kernel_busy_us'], 'span_us': traced['device_us'],
                    'traced_graph_launch_us': launch, 'graph_launches': sum(
                        e['per_call'] for e in traced['host_events'] if e['name'].startswith('cuGraphLaunch'))})
  xla_flags = os.environ.get('XLA_FLAGS', '')
  print(f'graph nodes probe on {dev.device_kind}, jax {jax.__version__}, XLA_FLAGS={xla_flags!r}; untraced means '
        f'over {FLAGS.calls} calls x 2 passes, traced columns over {FLAGS.traced_calls} calls')
  fmt = lambda v: f'{v:9.1f}' if v is not None else f'{"-":>9}'
  print(f'{"kind":<12} {"nodes":>5} {"request":>9} {"dispatch":>9} {"kernels":>9} {"busy":>9} {"span":>9} '
        f'{"gaps":>9} {"graphs":>9} {"cuGraphL":>9}   (us per call; cuGraphL traced)')
  for r in results:
    gaps = r['span_us'] - r['busy_us'] if r['span_us'] is not None else None
    print(f'{r["kind"]:<12} {r["nodes"]:5d} {fmt(r["request_us"])} {fmt(r["dispatch_us"])} {fmt(r["kernels"])} '
          f'{fmt(r["busy_us"])} {fmt(r["span_us"])} {fmt(gaps)} {fmt(r["graph_launches"])} '
          f'{fmt(r["traced_graph_launch_us"])}')
  fits = {}
  for kind in FLAGS.kinds:
    pts = [r for r in results if r['kind'] == kind and r['nodes'] >= FLAGS.fit_from and r['span_us'] is not None]
    if len(pts) < 2:
      continue
    fits[kind] = {what: fit([(r['nodes'], r[key] if key else r['span_us'] - r['busy_us']) for r in pts])
                  for what, key in (('request', 'request_us'), ('dispatch', 'dispatch_us'), ('gaps', None),
                                    ('busy', 'busy_us'), ('cuGraphLaunch', 'traced_graph_launch_us'))}
    print(f'{kind}: per node (us, least squares over {len(pts)} chains of >= {FLAGS.fit_from} nodes): ' + ', '.join(
        f'{what} {slope:.2f} (+{intercept:.1f})' for what, (slope, intercept) in fits[kind].items()))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump({'device': dev.device_kind, 'jax': jax.__version__, 'xla_flags': xla_flags, 'rows': results,
                 'per_node_fits': fits}, f, indent=1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
