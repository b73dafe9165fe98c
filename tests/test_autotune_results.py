"""kernels/autotune_results.py: per autotuned instruction, the best candidate against the first, from XLA's dump."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import autotune_results  # noqa: E402

# An xla.AutotuningLogs text proto as --xla_gpu_dump_autotune_logs_to writes it: a convolution whose first candidate
# failed, whose second is slower than its third; a failure message holding braces and quotes.
_DUMP = r"""
logs {
  instr {
    [type.googleapis.com/xla.HloInstructionProto] {
      name: "cudnn-conv.3"
      opcode: "custom-call"
      custom_call_target: "__cudnn$convBackwardInput"
    }
  }
  results {
    run_time {
    }
    failure {
      kind: DISQUALIFIED
      msg: "engine {7} said \"no\""
    }
    algorithm {
      algo_id: 7
    }
  }
  results {
    scratch_bytes: 16
    run_time {
      nanos: 250000
    }
    algorithm {
      algo_id: 12
    }
  }
  results {
    run_time {
      nanos: 100000
    }
    algorithm {
      algo_id: 3
    }
  }
}
logs {
  instr {
    [type.googleapis.com/xla.HloInstructionProto] {
      name: "cublas-gemm.1"
      custom_call_target: "__cublas$lt$matmul"
    }
  }
  results {
    run_time {
      seconds: 1
      nanos: 500000000
    }
  }
}
"""


def test_first_valid_candidate_against_the_best():
  conv, gemm = autotune_results.parse(_DUMP)
  assert (conv.name, conv.target, len(conv.results)) == ('cudnn-conv.3', '__cudnn$convBackwardInput', 3)
  assert conv.results[0].failed and not conv.results[1].failed
  assert (conv.first.algo, conv.best.algo) == ('12', '3')
  assert abs(conv.first.seconds - 250e-6) < 1e-12 and abs(gemm.best.seconds - 1.5) < 1e-12


def test_summary_states_what_taking_first_configs_costs():
  out = autotune_results.summarise(autotune_results.parse(_DUMP))
  assert '| cudnn-conv.3 | __cudnn$convBackwardInput | 3 | 1 | 100.0 | 250.0 | 2.50 | 1 (algo 3) |' in out
  assert '(+150.0 us per execution' in out
  assert autotune_results.summarise([]) == 'no autotuning logs in the file'
