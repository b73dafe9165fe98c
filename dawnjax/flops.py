"""Model FLOPs counted from a function's jaxpr: 2 x multiply-adds of every convolution and matmul.

Hardware-independent (the usual MFU numerator). XLA's compiled cost analysis is not usable for
this on GPU: convolutions become cuDNN custom calls that it does not count.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.extend import core


def _conv_flops(eqn) -> float:
  lhs, rhs = (v.aval for v in eqn.invars[:2])
  out = eqn.outvars[0].aval
  dn = eqn.params['dimension_numbers']
  rhs_spec = dn.rhs_spec  # (out_feature, in_feature, *spatial) positions
  kernel_in = rhs.shape[rhs_spec[1]]
  kernel_spatial = np.prod([rhs.shape[i] for i in rhs_spec[2:]])
  # Every output element is a dot product over (input features per group) x (kernel window).
  return 2.0 * float(np.prod(out.shape)) * kernel_in * float(kernel_spatial)


def _dot_flops(eqn) -> float:
  lhs, rhs = (v.aval for v in eqn.invars[:2])
  (lhs_contract, _), _ = eqn.params['dimension_numbers']
  contract = np.prod([lhs.shape[i] for i in lhs_contract])
  return 2.0 * float(np.prod(eqn.outvars[0].aval.shape)) * float(contract)


def _sub_jaxprs(eqn):
  for param in eqn.params.values():
    for item in (param if isinstance(param, (list, tuple)) else [param]):
      if isinstance(item, core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, core.Jaxpr):
        yield item


def jaxpr_flops(jaxpr: core.Jaxpr) -> float:
  """Sums conv/matmul FLOPs; loop bodies are counted once (callers count per iteration)."""
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      total += _conv_flops(eqn)
    elif name == 'dot_general':
      total += _dot_flops(eqn)
    elif name == 'cond':
      total += max((jaxpr_flops(b.jaxpr) for b in eqn.params['branches']), default=0.0)
      continue
    elif name == 'pallas_call':
      continue  # its body is one program of a grid; the callers count the op it stands for, or leave it out
    for sub in _sub_jaxprs(eqn):
      total += jaxpr_flops(sub)
  return total


def count_flops(fn: Callable[..., Any], *args: Any) -> float:
  """Conv + matmul FLOPs of one call of `fn(*args)` (args may be ShapeDtypeStructs)."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
