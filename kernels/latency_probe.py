"""What one batch-1 call of the served CIFAR-10 model costs, split into its parts (issue 6).

The inference benchmark reports one number per mode (device-resident input ~0.36 ms on an H200,
of which ~0.10-0.21 ms is device work). This probe times, in one process and side by side, the
floors a call is built from, so the remainder can be pinned on something:

  noop          jit(x + 1) on a device-resident image: JAX's dispatch + one kernel + the wait
  noop_vars     the same with the model's variables passed (and kept): pytree flattening cost
  put / get     jax.device_put of one uint8 image; np.asarray of a fresh int32[1] result
  model rows    the served classify (TTA views batched), for tta_level 0 and the recipe's level:
    rotating    a different device input buffer per call (what the benchmark's 'device' mode does)
    same        the same input buffer every call (command buffers need no address update)
    pipelined   all calls dispatched back to back, one wait: the host's cost per call
    host        device_put + classify + np.asarray (the benchmark's 'host' mode)
    baked_fresh --fresh_items new device buffers, each used once, then all of them again
    baked_host* the same with the weights compiled in, in ABBA order (_b rows): plain, and with the
                result's copy to the host started right after the dispatch (copy_to_host_async),
                so it is queued behind the compute instead of requested after the wait
  kernels       thunks in the compiled program (fusions, cuDNN/cuBLAS calls, copies) by kind

The weights are a fresh init (latency does not depend on their values); accuracy is the
benchmark's job, not this probe's. XLA flags come from the environment (XLA_FLAGS), so run it once
per setting. Prints one table; --json writes the figures.

  python3 kernels/latency_probe.py --flagfile=experiments/cifar10/fast.flags [--calls=2000]
"""
import collections
import json
import re
import time

from absl import app, flags

from dawnjax.experiments import cifar10 as cifar_entry  # defines the recipe flags it reads

FLAGS = flags.FLAGS
flags.DEFINE_integer('calls', 2000, 'Timed calls per row (after as many warm-up calls as --warmup).')
flags.DEFINE_integer('warmup', 200, 'Untimed calls before each row.')
flags.DEFINE_integer('fresh_items', 0, 'Also time the weights-compiled-in call over this many new device '
                     'input buffers, twice (first pass vs buffers seen before); 0 = skip.')
flags.DEFINE_string('json', None, 'Write the figures here too.')
flags.DEFINE_string('label', '', 'Free text printed with the table (e.g. the XLA_FLAGS setting).')


def _time_each(fn, n: int, warmup: int) -> dict:
  """fn(i) for i < n, each timed alone (the caller's fn must end in a device synchronisation)."""
  import numpy as np
  from dawnjax.inference import latency
  for i in range(warmup):
    fn(i % n)
  ms = np.zeros(n, np.float64)
  with latency.GcPaused():
    for i in range(n):
      start = time.perf_counter_ns()
      fn(i)
      ms[i] = (time.perf_counter_ns() - start) / 1e6
  return latency.latency_stats(ms)


def _time_pipelined(call, n: int, warmup: int) -> dict:
  import jax
  jax.block_until_ready([call(i % n) for i in range(warmup)])
  start = time.perf_counter_ns()
  jax.block_until_ready([call(i) for i in range(n)])
  per = (time.perf_counter_ns() - start) / n
  return {'mean_ms': per / 1e6}


def kernel_census(hlo_text: str) -> dict[str, int]:
  """Thunks a call of an optimised HLO module launches, by kind.

  Counts the entry computation's instructions and, where XLA wrapped runs of them into command
  buffers (CUDA graphs), the instructions inside those; 'call' is then the number of graphs.
  Fusions count as one kernel each, custom calls (cuDNN, cuBLAS) by target; parameters, tuples,
  bitcasts and constants launch nothing and are left out."""
  kinds = collections.Counter()
  counted = False
  for line in hlo_text.splitlines():
    header = re.match(r'(ENTRY )?%?([\w.\-]+) \(.*\{$', line)
    if header:
      counted = bool(header.group(1)) or 'command_buffer' in header.group(2)
      continue
    if not counted or line.startswith('}'):
      continue
    m = re.search(r' = [^ ]+(?: [^=]*?)? ([a-z][a-z\-]*)\(', line)
    if not m:
      continue
    op = m.group(1)
    if op in ('parameter', 'tuple', 'get-tuple-element', 'bitcast', 'constant'):
      continue
    if op == 'custom-call':
      target = re.search(r'custom_call_target="([^"]+)"', line)
      op = f'custom-call:{target.group(1) if target else "?"}'
    elif op == 'fusion':
      kind = re.search(r'kind=(k\w+)', line)
      op = f'fusion:{kind.group(1) if kind else "?"}'
    kinds[op] += 1
  return dict(sorted(kinds.items()))


def main(argv):
  del argv
  import dataclasses
  import os

  import jax
  import jax.numpy as jnp
  import numpy as np

  from dawnjax.workloads.cifar10 import build_model
  from dawnjax.workloads.cifar10 import inference_apply
  from dawnjax.inference.models import classifier
  from dawnjax.inference import latency

  recipe = cifar_entry.recipe_from_flags()
  dev = jax.devices()[0]
  n, warm = FLAGS.calls, FLAGS.warmup
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  dev_items = [jax.device_put(images[i:i + 1], dev) for i in range(n)]
  jax.block_until_ready(dev_items)
  rows: dict[str, dict] = {}

  noop = jax.jit(lambda x: x + 1).lower(dev_items[0]).compile()
  rows['noop'] = _time_each(lambda i: noop(dev_items[i]).block_until_ready(), n, warm)

  def put(i):
    return jax.device_put(images[i:i + 1], dev).block_until_ready()
  rows['put'] = _time_each(put, n, warm)
  # A jax.Array keeps its host copy, so every timed np.asarray gets a result never read before.
  fresh = [jnp.full((1,), i, jnp.int32) for i in range(n)]
  jax.block_until_ready(fresh)
  rows['get'] = _time_each(lambda i: np.asarray(fresh[i]), n, 0)

  census = {}
  for level in sorted({0, recipe.tta_level}):
    r = dataclasses.replace(recipe, tta_level=level)
    fn = classifier(inference_apply(r))
    model = build_model(r)
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3), jnp.dtype(r.dtype)), train=False))(
        jax.random.key(0))
    variables = jax.device_put(variables, dev)
    exe = jax.jit(fn).lower(variables, dev_items[0]).compile()
    census[f'tta{level}'] = kernel_census(exe.as_text())
    tag = f'tta{level}'
    if level == 0:
      noop_vars = jax.jit(lambda v, x: x + 1, keep_unused=True).lower(variables, dev_items[0]).compile()
      rows['noop_vars'] = _time_each(lambda i: noop_vars(variables, dev_items[i]).block_until_ready(), n, warm)
      rows['noop_vars']['leaves'] = len(jax.tree_util.tree_leaves(variables))
    rows[f'{tag}_rotating'] = _time_each(lambda i: exe(variables, dev_items[i]).block_until_ready(), n, warm)
    rows[f'{tag}_same'] = _time_each(lambda i: exe(variables, dev_items[0]).block_until_ready(), n, warm)
    rows[f'{tag}_pipelined'] = _time_pipelined(lambda i: exe(variables, dev_items[i]), n, warm)
    # The same function through jax.jit's own C++ dispatch (not the AOT Compiled object), and with
    # the weights compiled in as constants (no argument pytree per call, as a TensorRT engine does).
    jitted = jax.jit(fn)
    rows[f'{tag}_jit'] = _time_each(lambda i: jitted(variables, dev_items[i]).block_until_ready(), n, warm)
    baked = jax.jit(lambda x, fn=fn, v=variables: fn(v, x)).lower(dev_items[0]).compile()
    census[f'{tag}_baked_entry_parameters'] = len(re.findall(
        r'parameter\(', baked.as_text()[baked.as_text().index('\nENTRY'):]))
    rows[f'{tag}_baked'] = _time_each(lambda i: baked(dev_items[i]).block_until_ready(), n, warm)
    rows[f'{tag}_host'] = _time_each(
        lambda i: np.asarray(exe(variables, jax.device_put(images[i:i + 1], dev))), n, warm)

    # The benchmark's host modes read back through latency.read_back (copy requested at dispatch).
    host_async = lambda i: latency.read_back(baked(jax.device_put(images[i:i + 1], dev)))
    host_plain = lambda i: np.asarray(baked(jax.device_put(images[i:i + 1], dev)))
    for name, one in (('host', host_plain), ('host_async', host_async), ('host_async_b', host_async),
                      ('host_b', host_plain)):
      rows[f'{tag}_baked_{name}'] = _time_each(one, n, warm)
    if level == recipe.tta_level and FLAGS.fresh_items:
      # The benchmark's 'device' mode: one pass over a test set's worth of input buffers never seen
      # by this executable, then the same buffers again.
      fresh = [jax.device_put(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8), dev)
               for _ in range(FLAGS.fresh_items)]
      jax.block_until_ready(fresh)
      for name in ('fresh_pass1', 'fresh_pass2'):
        rows[f'{tag}_baked_{name}'] = _time_each(lambda i: baked(fresh[i]).block_until_ready(),
                                                 FLAGS.fresh_items, 0)

  print(f'latency probe on {dev.device_kind}, jax {jax.__version__}, {n} calls per row; '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r} {FLAGS.label}')
  print(f'{"row":<24} {"mean ms":>8} {"p50 ms":>8} {"p99 ms":>8} {"min ms":>8}')
  for name, s in rows.items():
    cells = ' '.join(f'{s[k]:8.4f}' if k in s else f'{"":>8}' for k in ('mean_ms', 'p50_ms', 'p99_ms', 'min_ms'))
    print(f'{name:<24} {cells}' + (f'  ({s["leaves"]} leaves)' if 'leaves' in s else ''))
  for tag, kinds in census.items():
    if isinstance(kinds, int):  # 1 = the weights are constants inside the executable, not hoisted arguments
      print(f'{tag}: {kinds}')
    else:
      print(f'{tag} thunks: {sum(kinds.values())} = ' + ', '.join(f'{k} {v}' for k, v in kinds.items()))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump({'device': dev.device_kind, 'xla_flags': os.environ.get('XLA_FLAGS', ''), 'label': FLAGS.label,
                 'calls': n, 'rows': rows, 'thunks': census}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
