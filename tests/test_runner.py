"""The shared runner's flag handling that does not need a device: --profile_steps -> epochs, XLA flags."""
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
