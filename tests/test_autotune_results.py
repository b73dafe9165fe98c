"""kernels/autotune_results.py: per autotuned instruction the best candidate against the first, per cuDNN engine its
share of the autotuning, and winners compared across two dumps (JAX 0.11's --xla_gpu_dump_autotune_logs_to)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import autotune_results  # noqa: E402


def _conv(fp, *engines_ns):
  profiles = ''.join(
      'config_profiles { config { backend: CUDNN backend_config { algorithm { '
      + (f'algo_id: {e} ' if e else '') + 'tuning_knobs { key: 2 value: 1 } } } } '
      + (f'run_time {{ nanos: {ns} }} ' if ns else 'run_time { } ') + '} '
      for e, ns in engines_ns)
  return f'instruction_profiles {{ hlo_fingerprint: "{fp}" {profiles}}}\n'


# A header, a convolution whose first candidate failed (no time) and whose fallback engine 0 (algo_id omitted, as the
# text format does for 0) is 1,000x slower, a fusion with one config (not autotuned), a GEMM with two.
_DUMP = ('device: "ed0e" codegen_version: "fe90"\n'
         + _conv('aaaa', (45, 0), (62, 250_000), (65, 100_000), (0, 100_000_000))
         + 'instruction_profiles { hlo_fingerprint: "ffff" config_profiles { config { backend: NATIVE_EMITTER '
           'backend_config { native_emitter { } } } run_time { nanos: 3648 } } }\n'
         + 'instruction_profiles { hlo_fingerprint: "bbbb" '
           'config_profiles { config { backend: CUBLASLT } run_time { nanos: 9000 } } '
           'config_profiles { config { backend: CUBLASLT } run_time { seconds: 1 nanos: 5 } } }\n')


def test_candidates_in_offered_order_with_engines_and_times():
  conv, fusion, gemm = autotune_results.parse(_DUMP)
  assert [(c.engine, c.seconds) for c in conv.candidates] == [(45, 0.0), (62, 250e-6), (65, 100e-6), (0, 0.1)]
  assert (conv.first.engine, conv.best.engine) == (62, 65)
  assert len(fusion.candidates) == 1 and gemm.candidates[1].seconds == 1.000000005


def test_summary_prices_first_configs_and_ranks_engines_by_time():
  out = autotune_results.summarise(autotune_results.parse(_DUMP))
  assert '| aaaa | CUDNN | 4 | 100.0 | 250.0 | 2.50 | CUDNN eng65 |' in out
  assert 'ffff' not in out  # one config: nothing was tuned
  assert '+150.0 us' in out
  engines = out[out.index('| cuDNN engine'):].splitlines()
  assert engines[2].startswith('| 0 | 1 | 100.0 |') and engines[2].endswith('| 0 |')  # the slow fallback, no wins
  assert '| 65 | 1 | 0.1 | 0% | 1 |' in out


def test_compare_names_instructions_with_another_winner():
  a = autotune_results.parse(_DUMP)
  b = autotune_results.parse(_conv('aaaa', (62, 90_000), (65, 100_000)) + _conv('cccc', (62, 1)))
  out = autotune_results.compare(a, b)
  assert out.splitlines()[0] == '1 instructions in both dumps; 1 with another winner:'
  assert 'aaaa: CUDNN eng65 (100.0 us) vs CUDNN eng62 (90.0 us)' in out
