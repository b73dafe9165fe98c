"""The CIFAR-10 workload under the shared loop: learning, determinism, data parallelism."""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dawnjax import parallel
from dawnjax.data.arrays import ImageClassificationData
from dawnjax.errors import ConfigError
from dawnjax.train import loop
from dawnjax.workloads.cifar10 import Cifar10Workload, CifarRecipe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(widths=(8, 8, 8), dtype='float32', eval_batch_size=64, whiten_images=64)


def learnable_data(n_train=512, n_test=128, seed=0) -> ImageClassificationData:
  """Each class has its own colour; noise on top. Learnable in a few steps, far from trivial."""
  rng = np.random.default_rng(seed)
  colours = rng.integers(40, 215, (10, 1, 1, 3))
  def split(n):
    y = rng.integers(0, 10, n).astype(np.int32)
    x = np.clip(colours[y] + rng.normal(0, 50, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    return x, y
  (xa, ya), (xb, yb) = split(n_train), split(n_test)
  return ImageClassificationData('synthetic', xa, ya, xb, yb, tuple(map(str, range(10))), 'generated')


def test_real_cifar10_jpeg_slice_beats_chance(cifar10_jpeg):
  # Muon learns fastest per step; XLA's CPU convolutions are slow, so this is 30 steps of 100 images.
  recipe = CifarRecipe(optimizer='muon', batch_size=100, epochs=3, widths=(8, 8, 8), dtype='float32',
                       eval_batch_size=250, whiten_images=500, tta_level=1, head_unit_std=True)
  wl = Cifar10Workload(recipe, parallel.make_mesh(), data_loader=lambda: cifar10_jpeg,
                       train_subset=1000, test_subset=500)
  result = loop.run(wl, loop.LoopConfig(seeds=1))
  assert wl.dataset_name == 'cifar10_jpeg' and wl.target.threshold == 90.5
  accs = [r.metrics['top1Accuracy'] for r in result.seeds[0].epochs]
  assert accs[-1] > 20.0, accs  # chance is 10%; this run reaches ~30%
  assert accs[-1] > accs[0], accs
  assert result.flops.train_per_example > 0 and result.compile_seconds > 0


def test_same_seed_same_result_other_seed_differs():
  data = learnable_data()
  wl = Cifar10Workload(CifarRecipe(batch_size=64, epochs=2, **TINY), parallel.make_mesh(), data_loader=lambda: data,
                       target=20.0)
  res = loop.run(wl, loop.LoopConfig(seeds=2))
  again = loop.train_seed(wl, 0, loop.LoopConfig())
  a = [e.metrics['top1Accuracy'] for e in res.seeds[0].epochs]
  assert a == [e.metrics['top1Accuracy'] for e in again.epochs]
  assert [e.train_loss for e in res.seeds[0].epochs] == [e.train_loss for e in again.epochs]
  assert [e.train_loss for e in res.seeds[1].epochs] != [e.train_loss for e in again.epochs]
  assert res.seeds[0].final_metrics['top1Accuracy'] > 20.0  # chance is 10%; this run gets ~31%
  assert res.seeds[0].reached_target and res.seeds[0].time_to_target is not None


def test_partial_last_epoch_and_schedule():
  data = learnable_data(n_train=640)
  wl = Cifar10Workload(CifarRecipe(batch_size=64, epochs=1.5, **TINY), parallel.make_mesh(), data_loader=lambda: data)
  wl.load_data()
  assert (wl.steps_per_epoch, wl.total_steps, wl.num_epochs) == (10, 15, 2)
  assert [wl.train_examples(e) for e in range(2)] == [640, 320]
  wl.compile(epoch_evals=False)
  state = wl.init(0)
  for epoch in range(2):
    state, _ = wl.train_epoch(state, epoch)
  assert int(state.step) == 15


def test_bad_recipe_is_a_config_error():
  with pytest.raises(ConfigError, match='--optimizer'):
    Cifar10Workload(CifarRecipe(optimizer='adam'), parallel.make_mesh(), data_loader=None)
  with pytest.raises(ConfigError, match='--batch_size'):
    Cifar10Workload(CifarRecipe(batch_size=0), parallel.make_mesh(), data_loader=None)
  wl = Cifar10Workload(CifarRecipe(batch_size=1024, **TINY), parallel.make_mesh(), data_loader=learnable_data)
  with pytest.raises(ConfigError, match='exceeds'):
    wl.load_data()
  for bad, flag in ((dict(activation='relu'), '--activation'), (dict(muon_norm_every=0), '--muon_norm_every'),
                    (dict(ns_coefficients=(3.0, -4.0)), '--ns_coefficients'),
                    (dict(brightness=-0.1), '--brightness')):
    with pytest.raises(ConfigError, match=flag):
      Cifar10Workload(CifarRecipe(**bad), parallel.make_mesh(), data_loader=None)


SHARDED_SCRIPT = textwrap.dedent('''
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from test_cifar10_workload import learnable_data, TINY
    from dawnjax import parallel
    from dawnjax.workloads.cifar10 import Cifar10Workload, CifarRecipe
    assert len(jax.devices()) == 8, jax.devices()
    data = learnable_data(n_train=256, n_test=128)
    out = {{}}
    for n in (1, 8):
      for opt, bn, conv1 in (('sgd', 'flax', 'conv'), ('muon', 'flax', 'conv'), ('sgd', 'fused', 'conv'),
                             ('sgd', 'flax', 'padded_igemm'), ('sgd', 'flax', 'padded_igemm_pool')):
        # the padded impls with the Pallas whitening: both Pallas kernels per batch shard
        whiten = 'pallas' if conv1 != 'conv' else 'conv'
        # padded_igemm_pool: also the chunked epoch loop (the two steps as one chunk) on 8 devices
        pool = dict(pool_impl='argmax', loop_chunk=2) if conv1 == 'padded_igemm_pool' else {{}}
        recipe = CifarRecipe(optimizer=opt, batch_size=64, epochs=0.5, bn_impl=bn, block1_conv1_impl=conv1,
                             whiten_impl=whiten, **TINY, **pool)  # two steps
        wl = Cifar10Workload(recipe, parallel.make_mesh(n), data_loader=lambda: data)
        wl.load_data(); wl.compile(epoch_evals=False)  # only the final evaluation runs
        state, _ = wl.train_epoch(wl.init(0), 0)
        leaves = jax.tree_util.tree_leaves(state.params)
        assert len(leaves[0].sharding.device_set) == n
        if conv1 != 'conv':  # the Pallas filter gradient runs per batch shard on 8 devices
          x = np.zeros((64, 32, 32, 3), np.float32)
          loss = lambda p: wl.model.apply({{'params': p, 'batch_stats': state.batch_stats}}, x, train=True,
                                          mutable=['batch_stats'])[0].sum()
          assert ('shard_map' in str(jax.make_jaxpr(jax.grad(loss))(state.params))) == (n > 1)
        name = {{'conv': '', 'padded_igemm': '_igemm', 'padded_igemm_pool': '_igemm_pool'}}[conv1]
        name += '_fused' if bn == 'fused' else ''
        out[f'{{opt}}{{name}}{{n}}'] = dict(
            params=[np.asarray(x).ravel().tolist() for x in leaves],
            stats=[np.asarray(x).ravel().tolist() for x in jax.tree_util.tree_leaves(state.batch_stats)],
            acc=wl.evaluate(state, final=True)['top1Accuracy'])
    print('RESULT' + json.dumps(out))
''')


def test_sharded_step_equals_single_device_on_8_fake_devices():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  proc = subprocess.run([sys.executable, '-c', SHARDED_SCRIPT.format(tests=os.path.join(REPO, 'tests'))],
                        env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split('RESULT', 1)[1])
  # Only summation order differs (all-reduce vs one sum), float32 throughout. Muon's orthogonalisation
  # lifts near-zero singular directions of a gradient to unit scale, so rounding noise there grows to
  # ~1e-3 (seen: 7e-4 in the 3x3-pixel last block); SGD stays at rounding level. Per-device BatchNorm
  # statistics or a wrongly split batch would be off by far more.
  # 'sgd_fused': the hand-written BatchNorm backward, sharded, against autodiff's on one device.
  # 'sgd_igemm': block1's Pallas filter gradient per batch shard + a psum, and the Pallas whitening forward
  # per batch shard, against one device's. 'sgd_igemm_pool': the same with the pool's backward in the kernel.
  for opt, atol in (('sgd', 2e-5), ('muon', 2e-3), ('sgd_fused', 2e-5), ('sgd_igemm', 2e-5), ('sgd_igemm_pool', 2e-5)):
    one, eight = out['sgd1' if opt == 'sgd_fused' else f'{opt}1'], out[f'{opt}8']
    for a, b in zip(one['params'] + one['stats'], eight['params'] + eight['stats']):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol)
    assert abs(one['acc'] - eight['acc']) <= 1.0


@pytest.mark.parametrize('tta_level,weighting', [(0, 'airbench'), (2, 'airbench'), (2, 'equal')])
def test_served_model_computes_the_final_evaluation_logits(tta_level, weighting):
  # The served function batches the TTA views into one forward pass; it must give the same
  # logits as the timed final evaluation, so the latency is measured for the model reported.
  from dawnjax import augment
  from dawnjax.workloads.cifar10 import inference_apply
  data = learnable_data(n_train=128, n_test=64)
  wl = Cifar10Workload(CifarRecipe(batch_size=64, epochs=1, tta_level=tta_level, tta_weighting=weighting, **TINY),
                       parallel.make_mesh(1), data_loader=lambda: data)
  wl.load_data()
  wl.compile()
  state = wl.init(0)
  apply_fn, variables, info = wl.inference_model(state)
  x = data.test_images[:5]
  served = np.asarray(apply_fn(variables, x))
  want = np.asarray(wl._logits_fn(state.params, state.batch_stats, augment.normalize(x, dtype=np.float32),
                                  tta_level=tta_level))
  np.testing.assert_allclose(served, want, rtol=1e-5, atol=1e-5)
  assert f'tta_level={tta_level}' in info['protocol']
  np.testing.assert_array_equal(np.asarray(inference_apply(wl.recipe)(variables, x)), served)


def test_selective_tta_replaces_only_the_least_confident_logits():
  # hiverge's selective TTA: a plain pass over every image, the TTA views for the least confident
  # fraction. Checked against the same rule written out in numpy, with a padded last eval batch.
  from dawnjax import augment
  data = learnable_data(n_train=256, n_test=100)
  recipe = CifarRecipe(batch_size=64, epochs=1, tta_level=2, tta_fraction=0.3, **TINY)
  wl = Cifar10Workload(recipe, parallel.make_mesh(1), data_loader=lambda: data)
  wl.load_data()
  flops_selective = wl.compile()
  state, _ = wl.train_epoch(wl.init(0), 0)
  x = augment.normalize(data.test_images, dtype=np.float32)
  plain = np.asarray(wl._logits_fn(state.params, state.batch_stats, x, tta_level=0))
  full = np.asarray(wl._logits_fn(state.params, state.batch_stats, x, tta_level=2))
  e = np.exp(plain - plain.max(-1, keepdims=True))
  confidence = (e / e.sum(-1, keepdims=True)).max(-1)
  pick = np.argsort(confidence)[:30]
  mixed = plain.copy()
  mixed[pick] = full[pick]
  want = 100.0 * np.mean(mixed.argmax(-1) == data.test_labels)
  assert wl.selective_tta_images(2) == 30 and wl.selective_tta_images(0) is None
  assert wl.evaluate(state, final=True)['top1Accuracy'] == pytest.approx(want, abs=1e-9)
  # FLOPs: one plain pass plus 6 views on one 64-image eval batch, per 100 test images.
  wl_full = Cifar10Workload(dataclasses.replace(recipe, tta_fraction=1.0), parallel.make_mesh(1),
                            data_loader=lambda: data)
  wl_full.load_data()
  ratio = flops_selective.eval_per_example / wl_full.compile().eval_per_example
  assert ratio == pytest.approx((1 + 6 * 0.64) / 6, rel=1e-3)


@pytest.mark.parametrize('fraction', [0.0, 1.5, -0.2])
def test_tta_fraction_outside_zero_one_is_refused(fraction):
  with pytest.raises(ConfigError, match='--tta_fraction'):
    Cifar10Workload(CifarRecipe(tta_fraction=fraction, **TINY), parallel.make_mesh(1), data_loader=None)


def test_warm_up_runs_every_program_once_off_the_clock_and_changes_no_result():
  data = learnable_data(n_train=128, n_test=64)
  runs = {}
  for warm in (False, True):
    wl = Cifar10Workload(CifarRecipe(batch_size=64, epochs=1, **TINY), parallel.make_mesh(1),
                         data_loader=lambda: data, warm_up=warm)
    calls = []
    for name in ('init', 'train_epoch', 'evaluate'):
      original = getattr(wl, name)
      setattr(wl, name, lambda *a, _f=original, _n=name, **k: (calls.append(_n), _f(*a, **k))[1])
    result = loop.run(wl, loop.LoopConfig(seeds=1))
    runs[warm] = ([e.train_loss for e in result.seeds[0].epochs], result.seeds[0].final_metrics, calls)
  assert runs[True][:2] == runs[False][:2]
  # Warm-up: init, one epoch, both evaluations, before the timed seed's own calls.
  assert runs[True][2][:4] == ['init', 'train_epoch', 'evaluate', 'evaluate']
  assert runs[True][2][4:] == runs[False][2]



def test_without_per_epoch_evaluations_the_plain_eval_program_is_not_compiled():
  data = learnable_data(n_train=128, n_test=64)
  wl = Cifar10Workload(CifarRecipe(batch_size=64, epochs=1, tta_level=1, **TINY), parallel.make_mesh(1),
                       data_loader=lambda: data, warm_up=True)
  result = loop.run(wl, loop.LoopConfig(seeds=1, eval_every_epoch=False))
  assert sorted(wl._eval_c) == [1]  # only the final (TTA) program; warm-up ran just what exists
  assert result.seeds[0].final_metrics['top1Accuracy'] > 0
  with pytest.raises(ConfigError, match='per-epoch evaluation was not compiled'):
    wl.evaluate(wl.init(0), final=False)

def conv_count(fn, *args) -> int:
  import jax
  return str(jax.make_jaxpr(fn)(*args)).count('conv_general_dilated')


def test_chunked_epoch_loop_runs_the_same_steps_with_a_known_inner_trip_count():
  import jax
  data = learnable_data(n_train=512, n_test=64)
  runs = {}
  for chunk in (1, 3):
    # 8 steps per epoch, the bias trains for 3: epoch 0 runs as pieces [0, 3) (one whole chunk) and
    # [3, 8) (one chunk and two leftover steps); epoch 1 [0, 5) of the 1.6 epochs.
    recipe = CifarRecipe(batch_size=64, epochs=1.6, whiten_bias_epochs=0.3, loop_chunk=chunk, **TINY)
    wl = Cifar10Workload(recipe, parallel.make_mesh(1), data_loader=lambda: data)
    wl.load_data()
    wl.compile(epoch_evals=False)
    assert [wl.epoch_segments(e) for e in range(2)] == [((True, 0, 3), (False, 3, 8)), ((False, 0, 5),)]
    # XLA knows the inner loop's trip count; the bias program runs 3 steps once: one chunk, still chunked.
    for trainable in (True, False):
      assert ('"n":"3"' in wl._epoch_c[trainable].as_text()) == (chunk == 3)
    state, losses = wl.init(0), []
    for epoch in range(2):
      state, loss = wl.train_epoch(state, epoch)
      losses.append(float(loss['train_loss']))
    runs[chunk] = (state, losses)
  assert int(runs[3][0].step) == int(runs[1][0].step) == 13
  np.testing.assert_allclose(runs[3][1], runs[1][1], rtol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(runs[3][0].params), jax.tree_util.tree_leaves(runs[1][0].params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # A program whose pieces are all shorter than a chunk keeps the plain loop (the step compiled once).
  wl = Cifar10Workload(CifarRecipe(batch_size=64, epochs=1.6, whiten_bias_epochs=0.3, loop_chunk=4, **TINY),
                       parallel.make_mesh(1), data_loader=lambda: data)
  wl.load_data()
  wl.compile(epoch_evals=False)
  assert (wl.longest_segment(True), wl.longest_segment(False)) == (3, 5)
  assert '"n":"4"' not in wl._epoch_c[True].as_text() and '"n":"4"' in wl._epoch_c[False].as_text()
  with pytest.raises(ConfigError, match='--loop_chunk'):
    CifarRecipe(loop_chunk=0).validate()


def test_steps_after_the_whitening_bias_freezes_drop_its_gradient_and_change_nothing_else():
  import jax
  data = learnable_data(n_train=128, n_test=64)
  runs = {}
  for prune in (False, True):
    # 2 steps per epoch; the bias trains for step 0 only, so epoch 0 runs as two pieces (no
    # lookahead: its EMA resets would move the frozen bias too, the same way in both programs).
    recipe = CifarRecipe(batch_size=64, epochs=3, whiten_bias_epochs=0.5, prune_frozen_grads=prune,
                         lookahead=False, **TINY)
    wl = Cifar10Workload(recipe, parallel.make_mesh(1), data_loader=lambda: data)
    wl.load_data()
    flops = wl.compile(epoch_evals=False)
    expected = [((True, 0, 2),)] * 3 if not prune else [((True, 0, 1), (False, 1, 2))] + [((False, 0, 2),)] * 2
    assert [wl.epoch_segments(e) for e in range(3)] == expected
    assert sorted(wl._epoch_c) == ([False, True] if prune else [True])
    state, biases, losses = wl.init(0), [], []
    for epoch in range(3):
      state, loss = wl.train_epoch(state, epoch)
      biases.append(np.asarray(state.params['whiten']['bias']))
      losses.append(float(loss['train_loss']))
    runs[prune] = (state, biases, losses, flops)
  (off, bias_off, loss_off, flops_off), (on, bias_on, loss_on, flops_on) = runs[False], runs[True]
  assert not np.array_equal(bias_on[0], np.zeros_like(bias_on[0]))  # it trained in epoch 0 ...
  for b in bias_on[1:] + bias_off[1:]:
    np.testing.assert_array_equal(b, bias_on[0])  # ... and is frozen after, both ways
  np.testing.assert_allclose(loss_on, loss_off, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(on.params), jax.tree_util.tree_leaves(off.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # 7 forward convolutions, 6 filter gradients (the fixed whitening kernel gets none), 6 input
  # gradients; the pruned step lacks block1's input gradient. The reported FLOPs follow the work.
  x, y = np.zeros((64, 32, 32, 3), np.float32), np.zeros((64,), np.int32)
  counts = [conv_count(lambda s, a, b, v=v: wl._train_step(s, a, b, whiten_trainable=v), on, x, y)
            for v in (True, False)]
  assert counts == [19, 18], counts
  assert flops_on.train_per_example < flops_off.train_per_example

def test_padded_igemm_block1_conv_trains_like_nn_conv_and_counts_the_same_model_flops():
  import jax
  data = learnable_data(n_train=128, n_test=64)
  runs = {}
  for impl in ('conv', 'padded_igemm'):
    # The whitening bias trains for step 0, so both the input gradient (XLA's, through the zero
    # channels) and the pruned program are exercised.
    recipe = CifarRecipe(batch_size=64, epochs=2, whiten_bias_epochs=0.5, lookahead=False,
                         block1_conv1_impl=impl, **TINY)
    wl = Cifar10Workload(recipe, parallel.make_mesh(1), data_loader=lambda: data)
    wl.load_data()
    flops = wl.compile(epoch_evals=False)
    state, losses = wl.init(0), []
    for epoch in range(2):
      state, loss = wl.train_epoch(state, epoch)
      losses.append(float(loss['train_loss']))
    runs[impl] = (flops, state, losses)
  (f_conv, s_conv, l_conv), (f_ours, s_ours, l_ours) = runs['conv'], runs['padded_igemm']
  assert f_ours == f_conv  # model FLOPs are the architecture's, not the padded or Pallas work
  np.testing.assert_allclose(l_ours, l_conv, rtol=1e-4)
  for a, b in zip(jax.tree_util.tree_leaves(s_ours.params), jax.tree_util.tree_leaves(s_conv.params)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  assert not np.allclose(s_ours.params['block1']['conv1']['kernel'], wl.init(0).params['block1']['conv1']['kernel'])


# ---------------------------------------------------------------- hiverge cifar10-speedrun knobs
HIVERGE_FLAGS = os.path.join(REPO, 'experiments', 'cifar10', 'hiverge.flags')


def first_update_changes(**knobs):
  """Names of the parameters whose first Muon-recipe update differs from the default recipe's,
  for the same params and gradients (the optimizer alone: no convolution is compiled)."""
  import jax
  from dawnjax.workloads.cifar10 import build_model
  data = learnable_data(n_train=64, n_test=16)
  updates = []
  for kw in ({}, knobs):
    recipe = CifarRecipe(optimizer='muon', batch_size=64, epochs=2, **TINY, **kw)
    wl = Cifar10Workload(recipe, parallel.make_mesh(1), data_loader=lambda: data)
    wl.load_data()
    shapes = jax.eval_shape(lambda: build_model(recipe).init(
        jax.random.PRNGKey(0), np.zeros((2, 32, 32, 3), np.float32), train=True)['params'])
    # Random weights: at init (Dirac filters at these widths) they already have norm sqrt(cout).
    rng = np.random.default_rng(0)
    params, grads = (jax.tree_util.tree_map(lambda x: rng.normal(size=x.shape).astype(np.float32), shapes)
                     for _ in range(2))
    tx = wl._optimizer()
    updates.append(tx.update(grads, tx.init(params), params)[0])
  changed = jax.tree_util.tree_map_with_path(
      lambda path, a, b: None if np.array_equal(a, b) else jax.tree_util.keystr(path), *updates)
  return sorted(jax.tree_util.tree_leaves(changed))


FILTERS = [f"['block{b}']['conv{c}']['kernel']" for b in (1, 2, 3) for c in (1, 2)]
SGD_GROUPS = sorted(["['head']['kernel']", "['whiten']['bias']"] +
                    [f"['block{b}']['norm{n}']['bias']" for b in (1, 2, 3) for n in (1, 2)])


@pytest.mark.parametrize('knobs,changed', [
    (dict(muon_norm_every=8), FILTERS),  # step 1 of 8: no renormalisation
    (dict(muon_filter_weight_decay=1e-4), FILTERS),
    (dict(ns_coefficients=(3.4576, -4.7391, 2.0843)), FILTERS),
    (dict(sgd_momentum=0.825), SGD_GROUPS),
    (dict(muon_norm_every=1, muon_filter_weight_decay=0.0, ns_coefficients=(3.4445, -4.7750, 2.0315),
          sgd_momentum=0.85), []),  # the defaults, spelled out
])
def test_muon_recipe_knobs_change_only_their_parameter_groups(knobs, changed):
  assert first_update_changes(**knobs) == sorted(changed)


def test_colour_jitter_applies_after_normalisation_as_a_function_of_the_step_key():
  import jax
  from dawnjax import augment
  data = learnable_data(n_train=64, n_test=16)
  key, idx, flips = jax.random.PRNGKey(5), np.arange(8), np.zeros(64, bool)

  def batch(**kw):
    wl = Cifar10Workload(CifarRecipe(batch_size=8, epochs=1, **TINY, **kw), parallel.make_mesh(1),
                         data_loader=lambda: data)
    wl.load_data()
    return np.asarray(wl._augmented_batch(wl.train_images, wl.train_labels, idx, flips, key)[0])

  plain, jittered = batch(), batch(brightness=0.1399, contrast=0.1308)
  want = augment.color_jitter(plain, augment.random_jitter(jax.random.fold_in(key, 2), 8), 0.1399, 0.1308)
  np.testing.assert_allclose(jittered, want, rtol=1e-6, atol=1e-6)
  assert np.abs(jittered - plain).max() > 0.05
  np.testing.assert_array_equal(batch(brightness=0.1399, contrast=0.1308), jittered)  # pure in the key


def test_silu_blocks_change_the_model_not_its_parameters():
  import jax
  from dawnjax import augment
  from dawnjax.workloads.cifar10 import build_model
  x = augment.normalize(learnable_data(n_train=4, n_test=4).test_images, dtype=np.float32)
  outputs = {}
  for act in ('gelu', 'silu'):
    model = build_model(CifarRecipe(activation=act, **TINY))
    variables = model.init(jax.random.PRNGKey(0), x, train=False)
    outputs[act] = (jax.tree_util.tree_map(np.shape, variables), np.asarray(model.apply(variables, x)))
  assert outputs['gelu'][0] == outputs['silu'][0]
  assert not np.allclose(outputs['gelu'][1], outputs['silu'][1], atol=1e-4)


PARSE_SCRIPT = textwrap.dedent('''
    import dataclasses, json, sys
    from absl import flags
    from dawnjax.experiments import cifar10
    flags.FLAGS([sys.argv[0], '--flagfile=' + sys.argv[1]])
    print('RECIPE' + json.dumps(dataclasses.asdict(cifar10.recipe_from_flags())))
''')


def test_hiverge_flags_parse_round_trip_and_a_tiny_run_learns():
  from dawnjax.workloads.cifar10 import recipe_from_config
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  proc = subprocess.run([sys.executable, '-c', PARSE_SCRIPT, HIVERGE_FLAGS], env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads(proc.stdout.split('RECIPE', 1)[1])
  recipe = recipe_from_config(config)  # model.json's round trip: lists back to tuples
  assert recipe_from_config(json.loads(json.dumps(dataclasses.asdict(recipe)))) == recipe
  want = dict(optimizer='muon', batch_size=1536, epochs=7.63, whiten_bias_epochs=0.19, label_smoothing=0.09,
              muon_lr=0.205, muon_momentum=0.655, bias_lr=0.0573, head_lr=0.5415, muon_weight_decay=1.0418e-06,
              muon_filter_weight_decay=1.0418e-06, muon_norm_every=8, ns_steps=3,
              ns_coefficients=(3.4576, -4.7391, 2.0843), sgd_momentum=0.825, bn_momentum=0.5566,
              activation='silu', gelu_approximate=False, brightness=0.1399, contrast=0.1308, whiten_images=960,
              tta_level=2, tta_fraction=0.2, head_unit_std=True, lookahead=False, flip='alternating',
              translate=2, widths=(64, 256, 256), whiten=True, dtype='bfloat16', pool_impl='reshape')
  assert {k: getattr(recipe, k) for k in want} == want
  # The same recipe at test size: ceil(4 x 7.63) = 31 steps of 64 images.
  tiny = dataclasses.replace(recipe, batch_size=64, **TINY)
  data = learnable_data(n_train=256, n_test=128)
  wl = Cifar10Workload(tiny, parallel.make_mesh(1), data_loader=lambda: data)
  result = loop.run(wl, loop.LoopConfig(seeds=1, eval_every_epoch=False))  # the final accuracy is enough
  assert wl.total_steps == 31
  assert result.seeds[0].final_metrics['top1Accuracy'] > 20.0  # chance is 10%; this run gets ~88%


def test_tta_weightings_average_the_same_six_views_differently():
  from dawnjax.workloads.cifar10 import tta_view_list
  x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
  views_a, airbench = tta_view_list(x, 2, 'airbench')
  views_e, equal = tta_view_list(x, 2, 'equal')
  assert len(views_a) == 6 and all(np.array_equal(a, e) for a, e in zip(views_a, views_e))
  assert airbench == [0.25, 0.25] + [0.125] * 4 and equal == [1 / 6] * 6
  np.testing.assert_array_equal(views_a[1], x[:, :, ::-1, :])  # the mirror of the untranslated image
  with pytest.raises(ConfigError, match='--tta_weighting'):
    Cifar10Workload(CifarRecipe(tta_weighting='mean', **TINY), parallel.make_mesh(1), data_loader=None)


ALL_RECIPES_SCRIPT = textwrap.dedent('''
    import dataclasses, glob, json, os, sys
    from absl import flags
    from dawnjax.experiments import cifar10
    out = {}
    for path in sorted(glob.glob(os.path.join(sys.argv[1], '*.flags'))):
      flags.FLAGS.unparse_flags()
      flags.FLAGS([sys.argv[0], '--flagfile=' + path])
      out[os.path.basename(path)] = dict(dataclasses.asdict(cifar10.recipe_from_flags()),
                                         xla_flags=flags.FLAGS.xla_flags,
                                         gpu_preallocate=flags.FLAGS.gpu_preallocate)
    print('RECIPES' + json.dumps(out))
''')


def test_every_cifar10_recipe_parses_and_fast_carries_its_compiler_settings():
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  proc = subprocess.run([sys.executable, '-c', ALL_RECIPES_SCRIPT, os.path.join(REPO, 'experiments', 'cifar10')],
                        env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  recipes = json.loads(proc.stdout.split('RECIPES', 1)[1])
  assert {'fast.flags', 'hiverge.flags', 'airbench94_muon_fast.flags'} <= set(recipes)
  fast = recipes['fast.flags']
  assert fast['epochs'] == 7.15 and fast['eval_batch_size'] == fast['batch_size'] == 1536
  assert fast['xla_flags'] == '--xla_gpu_enable_triton_gemm=false --xla_gpu_enable_command_buffer=+CONVOLUTION'
  assert not fast['gpu_preallocate']
  assert fast['block1_conv1_impl'] == 'padded_igemm' and fast['whiten_impl'] == 'pallas' and fast['loop_chunk'] == 8
  assert fast['whiten_fast_tanh'] and fast['gelu_approximate']
  assert recipes['hiverge.flags']['xla_flags'] == ''  # unparse_flags reset it between files
