"""Muon's knobs (Newton-Schulz coefficients, renormalisation period, filter decay) against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax import optim

HIVERGE_NS = (3.4576, -4.7391, 2.0843)


def numpy_newton_schulz(g, steps, coefficients):
  a, b, c = coefficients
  x = g / np.linalg.norm(g)
  x = x.T if x.shape[0] > x.shape[1] else x
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  return x.T if g.shape[0] > g.shape[1] else x


@pytest.fixture
def filters():
  """One filter bank (kh, kw, cin, cout) and a gradient for it, fp32."""
  rng = np.random.default_rng(0)
  return rng.normal(size=(3, 3, 4, 8)).astype(np.float32), rng.normal(size=(3, 3, 4, 8)).astype(np.float32)


@pytest.mark.parametrize('coefficients', [optim.NS_COEFFICIENTS, HIVERGE_NS])
def test_newton_schulz_matches_numpy_for_its_coefficients(filters, coefficients):
  g = filters[1].reshape(-1, 8)
  got = np.asarray(optim.newton_schulz(jnp.asarray(g), 3, eps=0.0, dtype=jnp.float32, coefficients=coefficients))
  np.testing.assert_allclose(got, numpy_newton_schulz(g.astype(np.float64), 3, coefficients), rtol=1e-4, atol=1e-5)
  # The defaults are airbench's coefficients; hiverge's give a different matrix.
  other = HIVERGE_NS if coefficients == optim.NS_COEFFICIENTS else optim.NS_COEFFICIENTS
  assert not np.allclose(got, optim.newton_schulz(jnp.asarray(g), 3, eps=0.0, dtype=jnp.float32,
                                                  coefficients=other), atol=1e-3)


def run_muon(tx, p, g, steps):
  """Params after each of `steps` updates with the same gradient."""
  state, out = tx.init(p), []
  for _ in range(steps):
    updates, state = tx.update(g, state, p)
    p = jax.tree_util.tree_map(lambda a, u: a + u, p, updates)
    out.append(p)
  return out


def test_renormalisation_every_8th_step_counts_steps_from_one(filters):
  # lr = 0 isolates the renormalisation: hiverge (norm_freq=8, 1-based step counter) leaves the
  # weights alone on steps 1..7 and rescales them to norm sqrt(cout) = sqrt(8) on step 8.
  p, g = filters
  zero_lr = lambda step: jnp.zeros([], jnp.float32)
  every8 = run_muon(optim.muon(0.0, 0.6, zero_lr, ns_dtype=jnp.float32, norm_every=8), p, g, 9)
  for step, q in enumerate(every8[:7], 1):
    np.testing.assert_array_equal(q, p, err_msg=f'step {step}')
  assert np.linalg.norm(p) != pytest.approx(np.sqrt(8), rel=1e-3)
  np.testing.assert_allclose(np.linalg.norm(every8[7]), np.sqrt(8), rtol=1e-6)
  np.testing.assert_allclose(every8[8], every8[7], rtol=1e-6)  # step 9: no rescale again
  # Default: every step, so already after the first.
  every1 = run_muon(optim.muon(0.0, 0.6, zero_lr, ns_dtype=jnp.float32), p, g, 1)
  np.testing.assert_allclose(np.linalg.norm(every1[0]), np.sqrt(8), rtol=1e-6)


def test_renormalisation_every_step_is_airbench94_muon(filters):
  # One step by hand: Nesterov momentum g + mu * g, orthogonalise, p * sqrt(cout)/|p| - lr * O.
  p, g = filters
  lr, mu = 0.24, 0.6
  got = run_muon(optim.muon(lr, mu, optim.linear_decay(10), ns_dtype=jnp.float32), p, g, 1)[0]
  ortho = numpy_newton_schulz(((1 + mu) * g).reshape(-1, 8).astype(np.float64), 3, optim.NS_COEFFICIENTS)
  want = p * np.sqrt(8) / np.linalg.norm(p) - lr * ortho.reshape(p.shape)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_filter_weight_decay_scales_by_the_scheduled_lr(filters):
  # Decoupled: p <- (p_new) * (1 - lr_t * wd), lr_t the scheduled Muon lr of that step. The weight is
  # renormalised before each step, so the decayed run stays a scalar multiple of the plain one.
  p, g = filters
  lr, wd, schedule = 0.2, 0.05, optim.linear_decay(10)
  plain = run_muon(optim.muon(lr, 0.6, schedule, ns_dtype=jnp.float32), p, g, 2)
  decayed = run_muon(optim.muon(lr, 0.6, schedule, ns_dtype=jnp.float32, weight_decay=wd), p, g, 2)
  for step, factor in enumerate((1 - lr * 1.0 * wd, 1 - lr * 0.9 * wd)):
    np.testing.assert_allclose(decayed[step], plain[step] * factor, rtol=1e-5, atol=1e-6)
