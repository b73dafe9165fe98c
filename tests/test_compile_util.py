"""Concurrent AOT compilation gives the same executables' results as sequential compilation."""
import jax
import jax.numpy as jnp
import numpy as np

from dawnjax import compile_util


def test_threads_compile_every_program_and_results_match_sequential():
  x = jax.ShapeDtypeStruct((16, 16), jnp.float32)
  fns = {'mm': jax.jit(lambda a: a @ a), 'tanh': jax.jit(jnp.tanh), 3: jax.jit(lambda a: a.sum(0))}
  lowerers = {k: (lambda f=f: f.lower(x)) for k, f in fns.items()}
  seq = compile_util.compile_all(lowerers, threads=1)
  par = compile_util.compile_all(lowerers, threads=3)
  assert set(seq) == set(par) == {'mm', 'tanh', 3}
  a = np.arange(256, dtype=np.float32).reshape(16, 16) / 256
  for k in fns:
    np.testing.assert_array_equal(np.asarray(seq[k](a)), np.asarray(par[k](a)))
    np.testing.assert_allclose(np.asarray(par[k](a)), np.asarray(fns[k](a)), rtol=1e-6)
