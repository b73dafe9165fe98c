"""Flags and plumbing shared by every experiment entry point (absl)."""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

from absl import flags

from dawnjax.errors import ConfigError, DawnjaxError

FLAGS = flags.FLAGS


def process_start_time() -> float:
  """Wall-clock time at which this process started (interpreter start-up counted), to ~10 ms.

  On Linux it is the kernel's start time of the process, in clock ticks since boot, against
  CLOCK_BOOTTIME now. psutil's create_time adds /proc/stat's boot time instead, which the kernel
  truncates to whole seconds: a process looked up to 1 s older than it was, by an amount that
  differs from one machine boot to the next (0.76 s on one machine, against 0.07 s measured from
  the parent that spawned it)."""
  try:
    with open('/proc/self/stat') as f:
      after_name = f.read().rsplit(')', 1)[1].split()  # the command name may hold spaces
    ticks_since_boot = int(after_name[19])  # field 22, starttime
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks_since_boot / os.sysconf('SC_CLK_TCK')
    return time.time() - age
  except (OSError, ValueError, IndexError, AttributeError):  # no procfs (macOS): psutil's is exact there
    pass
  try:
    import psutil
    return psutil.Process().create_time()
  except Exception:
    return time.time()


def define_common_flags() -> None:
  flags.DEFINE_string('data_dir', None, 'Dataset location (folder or archive; see README for formats).')
  flags.DEFINE_string('cache_dir', None, 'Where prepared uint8 caches go (default: <data_dir>/.dawnjax_cache '
                      'or ~/.cache/dawnjax when data_dir is not writable).')
  flags.DEFINE_bool('download', False, 'Download the official dataset (with checksum) when data_dir lacks it.')
  flags.DEFINE_string('output_dir', None, 'Run outputs: DAWNBench JSON/TSV, summary.json, tensorboard/.')
  flags.DEFINE_integer('seeds', 1, 'Independent trainings after one compile; statistics are over them.', lower_bound=1)
  flags.DEFINE_integer('seed', 0, 'First seed; seed i of the run is seed + i.', lower_bound=0)
  flags.DEFINE_integer('num_devices', None, 'Devices in the data-parallel mesh (default: all).')
  flags.DEFINE_bool('eval_every_epoch', True, 'Evaluate (untimed) after every epoch for the TSV.')
  flags.DEFINE_float('target', None, "Override the task's target metric value.")
  flags.DEFINE_string('author', 'dawnjax', 'Author field of the DAWNBench JSON.')
  flags.DEFINE_string('author_email', 'dawnjax@users.noreply.github.com', 'authorEmail field.')
  flags.DEFINE_float('cost_per_hour', None, 'USD per hour of all the devices used, for the cost fields '
                    '(default: the list price in dawnjax/prices.tsv x devices).')
  flags.DEFINE_bool('export_model', True, "After the first seed, save its trained model to output_dir/model "
                   '(untimed) for `python -m dawnjax.experiments.inference`.')
  flags.DEFINE_string('compilation_cache_dir', None, "JAX's persistent compilation cache directory.")
  flags.DEFINE_integer('xla_gpu_autotune_level', None, "XLA's GPU autotuning level (0-4; XLA's default 4). "
                       'Level 1 cut the CIFAR-10 compile from ~35 s to 28.5 s on an H100 with the same timed '
                       'seconds (20 seeds); level 0 made the run far slower. Appended to $XLA_FLAGS before JAX '
                       'starts its backends.', lower_bound=0, upper_bound=4)
  flags.DEFINE_list('cudnn_excluded_engines', [], 'cuDNN engine numbers kept out of XLA\'s convolution autotuning '
                    '(never compiled or timed), through cuDNN\'s errata file ($CUDNN_ERRATA_JSON_FILE; '
                    'dawnjax/cudnn_errata.py). The CIFAR-10 recipe drops the engines that took 85% of the '
                    'autotuner\'s GPU time on an H200 and never won.')
  flags.DEFINE_bool('executable_cache', True, 'With --compilation_cache_dir, also keep the compiled programs '
                    'themselves (and their FLOP counts) under <dir>/dawnjax_executables, keyed by dawnjax\'s source, '
                    'the recipe, data shapes, mesh, versions and XLA flags, so that a warm start skips tracing '
                    'and lowering as well as compiling (dawnjax/train/executable_cache.py).')
  flags.DEFINE_bool('gpu_preallocate', True, "JAX's default: reserve 75% of GPU memory when the backend starts. "
                    'That reservation made the first host-to-device copy take ~1.2 s on an H100; off '
                    '(XLA_PYTHON_CLIENT_PREALLOCATE=false) it took 0.3 s, and memory is taken as needed.')
  flags.DEFINE_string('xla_flags', '', 'More XLA flags ("--xla_... --xla_..."), appended to $XLA_FLAGS before '
                      'JAX starts its backends, so that a recipe carries the compiler settings it was '
                      'measured with (e.g. --xla_flags=--xla_gpu_enable_triton_gemm=false).')
  flags.DEFINE_bool('tensorboard', True, 'Write TensorBoard scalars under output_dir/tensorboard.')
  flags.DEFINE_string('notes', '', 'Free text recorded in the summary.')
  flags.DEFINE_integer('checkpoint_every_epochs', 0, 'Orbax checkpoint of the full train state every N '
                       'epochs into output_dir/checkpoints (async; 0 = off). Saves are timed.', lower_bound=0)
  flags.DEFINE_float('checkpoint_every_seconds', 0.0, 'Also checkpoint at the first epoch end that is this '
                     'many timed seconds after the last save (0 = off).', lower_bound=0.0)
  flags.DEFINE_integer('keep', 2, 'Checkpoints kept per seed (the newest).', lower_bound=1)
  flags.DEFINE_bool('resume', True, 'Continue from output_dir/checkpoints when it holds checkpoints of this '
                    'run (finished seeds are not trained again); --noresume refuses to start over them.')
  flags.DEFINE_bool('checkpoint_baseline', False, 'After the checkpointed seeds, train the same seeds with '
                    'checkpointing off (not in the TSV) and report both timed figures in summary.json.')
  flags.DEFINE_string('profile_epochs', None, 'START:END (1-based, inclusive): jax.profiler trace of '
                      'those epochs of the first seed into output_dir/tensorboard/profile.')
  flags.DEFINE_string('profile_steps', None, 'START:END (1-based global training steps, inclusive): '
                      'jax.profiler trace of the epochs holding those steps of the first seed (an epoch '
                      'is the unit the loop dispatches; CIFAR-10 runs it as one device program).')


def require_output_dir() -> None:
  if not FLAGS.output_dir:
    raise ConfigError('--output_dir is required: where results are written')


def merged_xla_flags(env: str, extra: str, autotune_level: int | None) -> str:
  """$XLA_FLAGS with --xla_flags and --xla_gpu_autotune_level appended (later flags win in XLA)."""
  added = extra.split()
  if bad := [f for f in added if not f.startswith('--xla_')]:
    raise ConfigError(f'--xla_flags: {" ".join(bad)} is not an XLA flag (each must look like --xla_name=value)')
  if autotune_level is not None:
    added.append(f'--xla_gpu_autotune_level={autotune_level}')
  return ' '.join([env, *added]).strip()


def without_conv_command_buffers(xla_flags: str) -> str:
  """xla_flags with CONVOLUTION taken out of every --xla_gpu_enable_command_buffer list (a list left
  empty drops the flag: XLA's default set, which has no convolutions)."""
  out = []
  for flag in xla_flags.split():
    name, _, value = flag.partition('=')
    if name == '--xla_gpu_enable_command_buffer':
      kept = [v for v in value.split(',') if v.lstrip('+') != 'CONVOLUTION']
      if not kept:
        continue
      flag = f'{name}={",".join(kept)}'
    out.append(flag)
  return ' '.join(out)


def configure_jax() -> None:
  """Applies the JAX/XLA flags; must run before anything touches a device."""
  merged = merged_xla_flags(os.environ.get('XLA_FLAGS', ''), FLAGS.xla_flags, FLAGS.xla_gpu_autotune_level)
  if FLAGS.compilation_cache_dir and (kept := without_conv_command_buffers(merged)) != merged:
    # With JAX 0.11.2 on an H200, every process that loaded its programs from the persistent cache
    # died in its first evaluation with "INTERNAL: No DNN support for stream" when cuDNN convolutions
    # were in command buffers; without them the cache hit ran (4.8 s wall;
    # results/cifar10_jpeg/h200_2026-12-02_s11). The flag is recorded as run.
    print('--compilation_cache_dir: cuDNN convolutions taken out of XLA command buffers (programs loaded '
          'from the cache fail with them: "No DNN support for stream")', flush=True)
    FLAGS.xla_flags = without_conv_command_buffers(FLAGS.xla_flags)
    merged = kept
  os.environ['XLA_FLAGS'] = merged
  if FLAGS.cudnn_excluded_engines:
    from dawnjax import cudnn_errata
    cudnn_errata.install(cudnn_errata.parse_engines(FLAGS.cudnn_excluded_engines))
  if not FLAGS.gpu_preallocate:
    os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
  import jax
  if FLAGS.compilation_cache_dir:
    jax.config.update('jax_compilation_cache_dir', FLAGS.compilation_cache_dir)
    # Cache every program: the whole point is a warm start of the benchmark command.
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)


def flag_values(module_names: tuple[str, ...] = ()) -> dict[str, Any]:
  """Every flag this program defines (not absl's own), for the summary."""
  out = {}
  for name in FLAGS:
    flag = FLAGS[name]
    module = FLAGS.find_module_defining_flag(name, default='')
    if module.startswith('dawnjax') or module == '__main__' or module in module_names:
      out[name] = flag.value
  return out


def default_cache_dir(data_dir: str) -> str:
  if FLAGS.cache_dir:
    return FLAGS.cache_dir
  base = data_dir if os.path.isdir(data_dir) else os.path.dirname(os.path.abspath(data_dir))
  if os.access(base, os.W_OK):
    return os.path.join(base, '.dawnjax_cache')
  return os.path.join(os.path.expanduser('~'), '.cache', 'dawnjax')


def main_guard(fn: Callable[[], int | None]) -> Callable[[list[str]], int | None]:
  """Wraps an experiment so that user-fixable problems print one line, not a traceback."""

  def main(argv: list[str]) -> int | None:
    if len(argv) > 1:
      print(f'error: unexpected arguments {argv[1:]}', file=sys.stderr)
      return 2
    try:
      return fn()
    except DawnjaxError as err:
      print(f'error: {err}', file=sys.stderr)
      sys.exit(2)

  return main
