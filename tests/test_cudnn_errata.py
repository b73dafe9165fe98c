"""dawnjax/cudnn_errata.py: the errata file that keeps cuDNN engines out of XLA's autotuning."""
import json
import os

import pytest

from dawnjax import cudnn_errata
from dawnjax.errors import ConfigError


def test_rules_block_each_engine_for_every_convolution_kind():
  doc = cudnn_errata.errata([45, 0, 45])
  assert doc['version'] == 1
  assert [(r['operation'], r['engine']) for r in doc['rules']] == [
      ('ConvFwd', 0), ('ConvBwdData', 0), ('ConvBwdFilter', 0), ('ConvFwd', 45), ('ConvBwdData', 45),
      ('ConvBwdFilter', 45)]
  assert all('knob' not in r for r in doc['rules'])  # every knob setting of the engine


def test_install_writes_the_file_and_points_cudnn_at_it(tmp_path, monkeypatch):
  monkeypatch.setenv(cudnn_errata.ENV, '')  # unset for the module, and restored after the test
  assert cudnn_errata.install([], str(tmp_path)) is None and os.environ[cudnn_errata.ENV] == ''
  path = cudnn_errata.install([1, 19], str(tmp_path))
  assert os.environ[cudnn_errata.ENV] == path
  assert json.loads(cudnn_errata.installed_rules()) == cudnn_errata.errata([1, 19])
  assert cudnn_errata.install([19, 1], str(tmp_path)) == path  # same rules, same file: installing again is fine


def test_a_users_own_errata_file_is_not_overridden(tmp_path, monkeypatch):
  monkeypatch.setenv(cudnn_errata.ENV, str(tmp_path / 'mine.json'))
  with pytest.raises(ConfigError, match='both set'):
    cudnn_errata.install([0], str(tmp_path))
  assert cudnn_errata.installed_rules().startswith('unreadable ')  # cuDNN ignores it; the cache key says so


def test_engine_numbers_are_checked():
  with pytest.raises(ConfigError, match='not engine numbers'):
    cudnn_errata.errata([-1])


def test_the_executable_cache_key_changes_with_the_errata(tmp_path, monkeypatch):
  from dawnjax.train import executable_cache
  monkeypatch.setenv(cudnn_errata.ENV, '')
  plain = executable_cache.cache_key({'w': 1})
  cudnn_errata.install([0], str(tmp_path))
  assert executable_cache.cache_key({'w': 1}) != plain
