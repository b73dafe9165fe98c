"""kernels/autotune_log.py: each autotuned instruction's compile and profile time from XLA's autotuner log."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import autotune_log  # noqa: E402

# autotuner.cc's VLOG lines from two compile threads (111 tunes a convolution while 222 hits the cache for a fusion),
# and another file's line that must be ignored.
_LOG = """\
I1202 07:00:00.000000  111 autotuner.cc:186] Getting config for HLO: %cudnn-conv.1 = (bf16[1536,64,32,32]{3,2,1,0}, u8[0]{0}) custom-call(%a, %b), custom_call_target="__cudnn$convBackwardInput"
I1202 07:00:00.001000  111 autotuner.cc:200] Autotuning the HLO instruction to find best config.
I1202 07:00:00.002000  111 autotuner.cc:215] Found total of 3 supported configs.
I1202 07:00:00.100000  222 autotuner.cc:186] Getting config for HLO: %loop_add_fusion = bf16[8]{0} fusion(%p), kind=kLoop, calls=%fused
I1202 07:00:00.100500  222 autotuner.cc:190] Using cached config: NativeEmitter : {}
I1202 07:00:00.500000  999 gpu_compiler.cc:1] not the autotuner
I1202 07:00:00.802000  111 autotuner.cc:240] Successfully compiled 2 configs out of 3 configs.
I1202 07:00:00.900000  111 autotuner.cc:500] {Cudnn :  duration: 120us, scratch_bytes: 0}
I1202 07:00:01.000000  111 autotuner.cc:500] {Cudnn :  duration: 1.5ms, scratch_bytes: 1024}
I1202 07:00:01.302000  111 autotuner.cc:262] Picked best config: Cudnn : algo_id: 7
"""


def test_each_instruction_is_split_into_compile_and_profile():
  conv, fusion = autotune_log.parse(_LOG)
  assert (conv.kind, conv.name, conv.cached, conv.configs, conv.compiled) == (
      'conv input gradient', '%cudnn-conv.1', False, 3, 2)
  assert abs(conv.compile_seconds - 0.8) < 1e-6 and abs(conv.profile_seconds - 0.5) < 1e-6
  assert [round(d * 1e6) for d in conv.durations] == [120, 1500]
  assert (fusion.kind, fusion.cached, fusion.compile_seconds, fusion.profile_seconds) == ('fusion', True, 0.0, 0.0)


def test_summary_totals_by_kind():
  out = autotune_log.summarise(autotune_log.parse(_LOG), top=1)
  assert '| conv input gradient | 1 | 0 | 3 | 2 | 0.80 | 0.50 | 1.30 |' in out
  assert '| fusion | 1 | 1 | 0 | 0 | 0.00 | 0.00 | 0.00 |' in out
  assert '120 / 1500 / 1500' in out  # best / median / worst candidate run, us
  assert 'no autotuner lines' in autotune_log.summarise([])
