"""The shared runner's flag handling that does not need a device: --profile_steps -> epochs, XLA flags."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from dawnjax.errors import ConfigError
from dawnjax.experiments import common, runner


class _Steps:
  """Only what epochs_of_steps reads: epochs of 25, 25 and a partial 10 steps."""
  num_epochs = 3

  def train_steps(self, epoch):
    return (25, 25, 10)[epoch]


@pytest.mark.parametrize('steps, epochs', [((1, 1), (1, 1)), ((25, 26), (1, 2)), ((26, 50), (2, 2)),
                                           ((40, 60), (2, 3)), ((51, 999), (3, 3))])
def test_profile_steps_map_to_the_epochs_holding_them(steps, epochs):
  assert runner.epochs_of_steps(_Steps(), steps) == epochs


def test_profile_steps_past_the_run_and_bad_specs_are_clear_errors():
  with pytest.raises(ConfigError, match='only 60 training steps'):
    runner.epochs_of_steps(_Steps(), (61, 70))
  with pytest.raises(ConfigError, match='--profile_steps=.*START:END'):
    runner.parse_profile_epochs('3-4', 'profile_steps')
  with pytest.raises(ConfigError, match='1 <= START <= END'):
    runner.parse_profile_epochs('5:2')


def test_recipe_xla_flags_append_to_the_environment_and_reject_non_xla_words():
  merged = common.merged_xla_flags('--xla_dump_to=/tmp/x', ' --xla_gpu_enable_triton_gemm=false ', 1)
  assert merged.split() == ['--xla_dump_to=/tmp/x', '--xla_gpu_enable_triton_gemm=false',
                            '--xla_gpu_autotune_level=1']
  assert common.merged_xla_flags('', '', None) == ''
  with pytest.raises(ConfigError, match='--xla_flags: triton=off is not an XLA flag'):
    common.merged_xla_flags('', '--xla_gpu_autotune_level=1 triton=off', None)


def test_convolution_command_buffers_are_taken_out_only_when_programs_come_from_the_cache(tmp_path):
  strip = common.without_conv_command_buffers
  assert strip('--a=1 --xla_gpu_enable_command_buffer=+CONVOLUTION --b=2') == '--a=1 --b=2'
  flag = '--xla_gpu_enable_command_buffer='
  assert strip(flag + 'FUSION,CONVOLUTION,CUBLAS') == flag + 'FUSION,CUBLAS'
  assert strip('--xla_gpu_enable_command_buffer=FUSION') == '--xla_gpu_enable_command_buffer=FUSION'
  code = ('import os\nfrom absl import flags\nfrom dawnjax.experiments import common\ncommon.define_common_flags()\n'
          'flags.FLAGS(["x", "--xla_flags=--xla_gpu_enable_triton_gemm=false '
          '--xla_gpu_enable_command_buffer=+CONVOLUTION"]'
          ' + (["--compilation_cache_dir=" + {cache!r}] if {cache!r} else []))\n'
          'common.configure_jax()\nprint("ENV", os.environ["XLA_FLAGS"], "|", flags.FLAGS.xla_flags)\n')
  cached = _python(code.format(cache=str(tmp_path)), XLA_FLAGS='--xla_dump_to=/tmp/x')
  assert cached.returncode == 0, cached.stderr[-2000:]
  assert 'No DNN support for stream' in cached.stdout
  assert cached.stdout.split('ENV', 1)[1].split() == ['--xla_dump_to=/tmp/x', '--xla_gpu_enable_triton_gemm=false', '|',
                                                      '--xla_gpu_enable_triton_gemm=false']
  plain = _python(code.format(cache=''))
  assert plain.returncode == 0, plain.stderr[-2000:]
  assert 'CONVOLUTION | --xla_gpu_enable_triton_gemm=false --xla_gpu_enable_command_buffer=+CONVOLUTION' in plain.stdout


def test_excluded_cudnn_engines_reach_the_errata_file_before_jax_starts(tmp_path):
  code = ('import os\nfrom absl import flags\nfrom dawnjax.experiments import common\ncommon.define_common_flags()\n'
          'flags.FLAGS(["x", "--cudnn_excluded_engines={engines}"])\ncommon.configure_jax()\n'
          'print("FILE", open(os.environ["CUDNN_ERRATA_JSON_FILE"]).read().count("rule_id"))\n')
  ok = _python(code.format(engines='0,45'), TMPDIR=str(tmp_path), CUDNN_ERRATA_JSON_FILE='')
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert 'FILE 6' in ok.stdout  # 2 engines x forward, input gradient, filter gradient
  bad = _python(code.format(engines='eng0'), TMPDIR=str(tmp_path))
  assert bad.returncode != 0 and '--cudnn_excluded_engines=eng0: not integers' in bad.stderr


def _python(code: str, **env) -> subprocess.CompletedProcess:
  full_env = {**os.environ, 'JAX_PLATFORMS': 'cpu', **env}
  for name in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID', 'DAWNJAX_MULTIHOST'):
    if name not in env:
      full_env.pop(name, None)
  return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=full_env, timeout=120)


def test_cifar10_entry_point_checks_its_flags_before_importing_jax_flax_or_optax():
  # A mistyped flag or a missing --data_dir is a one-line error in ~0.1 s, not after JAX's 1-2 s
  # import (the recipe lives in the Flax-free workloads/cifar10_recipe.py for this).
  out = _python('import sys, dawnjax.experiments.cifar10\n'
                'print(sorted(m for m in ("jax", "flax", "optax") if m in sys.modules))')
  assert out.returncode == 0, out.stderr
  assert out.stdout.split('\n')[0] == '[]'
  run = subprocess.run([sys.executable, '-m', 'dawnjax.experiments.cifar10', '--output_dir=/tmp/x'],
                       capture_output=True, text=True, timeout=120)
  assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].startswith('error: --data_dir is required')


def test_multi_host_join_happens_before_the_backend_starts():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  # The old check, jax.process_count() > 1, started the backend itself, after which
  # jax.distributed.initialize always refused: no multi-host run could start.
  out = _python('from dawnjax import parallel\n'
                'parallel.maybe_initialize_distributed()\n'
                'import jax\n'
                'print(jax.distributed.is_initialized(), jax.process_count(), len(jax.devices()) > 0)\n'
                'jax.distributed.shutdown()',
                JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{port}', JAX_NUM_PROCESSES='1', JAX_PROCESS_ID='0')
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split('\n')[0] == 'True 1 True'


def test_bad_multi_host_settings_are_one_line_errors(monkeypatch):
  from dawnjax import parallel
  monkeypatch.setenv('JAX_COORDINATOR_ADDRESS', '127.0.0.1:1')
  monkeypatch.setenv('JAX_NUM_PROCESSES', 'two')
  with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES='two': expected an integer"):
    parallel.maybe_initialize_distributed()


def test_result_versions_come_from_the_installed_distributions_without_importing_them():
  # Importing orbax only to read its version cost ~0.25 s of every run's wall time.
  out = _python('import importlib.metadata, json, sys\n'
                'from dawnjax.train import reporting\n'
                'assert "orbax.checkpoint" not in sys.modules\n'
                'import jax\n'
                'v = reporting.software_versions()\n'
                'print(json.dumps([v, "orbax.checkpoint" in sys.modules, '
                'importlib.metadata.version("orbax-checkpoint"), jax.__version__]))')
  assert out.returncode == 0, out.stderr
  versions, imported, orbax_version, jax_version = json.loads(out.stdout.splitlines()[-1])
  assert not imported
  assert versions['orbax.checkpoint'] == orbax_version and versions['jax'] == jax_version
  assert set(versions) == {'python', 'jax', 'jaxlib', 'flax', 'optax', 'orbax.checkpoint', 'numpy'}


def test_process_start_time_is_when_the_process_was_spawned():
  # The start-up and wall seconds every run reports begin here. psutil's create_time put it up to 1 s
  # early (the kernel's boot time is truncated to whole seconds); measured here from the parent.
  before = time.time()
  out = _python('from dawnjax.experiments import common\nprint(repr(common.process_start_time()))')
  after = time.time()
  assert out.returncode == 0, out.stderr
  start = float(out.stdout.splitlines()[-1])
  assert before - 0.03 <= start <= after, (before, start, after)
