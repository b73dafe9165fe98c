"""A BERT encoder (post-LN, GELU) with a span head, in Flax linen, configured from HF config.json.

Parameters are fp32; `dtype` sets the matmul/activation dtype (bf16 on accelerators). LayerNorm,
softmax and the span logits always run in fp32: they are where bf16's 8-bit mantissa hurts.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from dawnjax.errors import ConfigError

_ACTIVATIONS = {
    'gelu': lambda x: nn.gelu(x, approximate=False),  # BERT's erf GELU
    'gelu_new': lambda x: nn.gelu(x, approximate=True),
    'gelu_pytorch_tanh': lambda x: nn.gelu(x, approximate=True),
    'relu': nn.relu,
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int = 30522
  hidden_size: int = 384
  num_hidden_layers: int = 6
  num_attention_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = 'gelu'
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  initializer_range: float = 0.02

  @classmethod
  def from_hf(cls, cfg: Mapping[str, Any]) -> BertConfig:
    """From a Hugging Face BERT `config.json` dict; unknown keys are ignored."""
    if cfg.get('position_embedding_type', 'absolute') != 'absolute':
      raise ConfigError(f"only absolute position embeddings are supported, config has "
                        f"{cfg['position_embedding_type']!r}.")
    names = {f.name for f in dataclasses.fields(cls)}
    out = cls(**{k: v for k, v in cfg.items() if k in names})
    if out.hidden_act not in _ACTIVATIONS:
      raise ConfigError(f'hidden_act {out.hidden_act!r} unsupported; use one of {sorted(_ACTIVATIONS)}.')
    if out.hidden_size % out.num_attention_heads:
      raise ConfigError(f'hidden_size {out.hidden_size} is not divisible by '
                        f'num_attention_heads {out.num_attention_heads}.')
    return out


class Embeddings(nn.Module):
  cfg: BertConfig

  @nn.compact
  def __call__(self, input_ids, token_type_ids, deterministic: bool):
    cfg = self.cfg
    init = nn.initializers.normal(cfg.initializer_range)
    embed = lambda n, name: nn.Embed(n, cfg.hidden_size, embedding_init=init, name=name)
    positions = jnp.arange(input_ids.shape[-1])[None, :]
    x = (embed(cfg.vocab_size, 'word_embeddings')(input_ids)
         + embed(cfg.max_position_embeddings, 'position_embeddings')(positions)
         + embed(cfg.type_vocab_size, 'token_type_embeddings')(token_type_ids))
    x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name='layer_norm')(x)
    return nn.Dropout(cfg.hidden_dropout_prob)(x, deterministic=deterministic)


class Layer(nn.Module):
  """One post-LN transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""
  cfg: BertConfig
  dtype: Any

  @nn.compact
  def __call__(self, x, attn_bias, deterministic: bool):
    cfg = self.cfg
    heads = cfg.num_attention_heads
    head_dim = cfg.hidden_size // heads
    dense = lambda n, name: nn.Dense(
        n, dtype=self.dtype, kernel_init=nn.initializers.normal(cfg.initializer_range), name=name)
    norm = lambda name: nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name=name)
    drop = lambda y, rate: nn.Dropout(rate)(y, deterministic=deterministic)

    split = lambda y: y.reshape(*y.shape[:-1], heads, head_dim)
    q, k, v = (split(dense(cfg.hidden_size, n)(x)) for n in ('query', 'key', 'value'))
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32)
    logits = logits / jnp.sqrt(jnp.float32(head_dim))
    probs = drop(jax.nn.softmax(logits + attn_bias, axis=-1), cfg.attention_probs_dropout_prob)
    ctx = jnp.einsum('bhqk,bkhd->bqhd', probs.astype(self.dtype), v)
    ctx = ctx.reshape(*ctx.shape[:-2], cfg.hidden_size)
    x = norm('attention_layer_norm')(x + drop(dense(cfg.hidden_size, 'attention_output')(ctx),
                                              cfg.hidden_dropout_prob))
    h = _ACTIVATIONS[cfg.hidden_act](dense(cfg.intermediate_size, 'intermediate')(x))
    return norm('output_layer_norm')(x + drop(dense(cfg.hidden_size, 'output')(h),
                                              cfg.hidden_dropout_prob))


class Encoder(nn.Module):
  """Embeddings + layers; returns the fp32 (batch, seq, hidden) sequence output."""
  cfg: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, deterministic: bool = True):
    x = Embeddings(self.cfg, name='embeddings')(input_ids, token_type_ids, deterministic)
    # Additive mask in fp32: padding keys get a large negative logit (finite, so an all-padding
    # row still has a well-defined softmax).
    attn_bias = jnp.where(attention_mask[:, None, None, :], 0.0, -1e9).astype(jnp.float32)
    for i in range(self.cfg.num_hidden_layers):
      x = Layer(self.cfg, self.dtype, name=f'layer_{i}')(x, attn_bias, deterministic)
    return x


class SpanModel(nn.Module):
  """Encoder + Dense(2) span head. Logits are masked to context tokens and [CLS].

  [CLS] stays legal because training windows that miss the answer are labelled with it; decoding
  excludes it again (SQuAD v1.1 always has an answer).
  """
  cfg: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, context_mask,
               deterministic: bool = True):
    x = Encoder(self.cfg, self.dtype, name='encoder')(
        input_ids, token_type_ids, attention_mask, deterministic)
    logits = nn.Dense(2, dtype=jnp.float32, name='qa_outputs',
                      kernel_init=nn.initializers.normal(self.cfg.initializer_range))(x)
    legal = context_mask.at[:, 0].set(True)
    logits = jnp.where(legal[..., None], logits, -1e9)
    return logits[..., 0], logits[..., 1]


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
  """Attention-mask-weighted mean over tokens (sentence-transformers' pooling)."""
  m = attention_mask.astype(hidden.dtype)[..., None]
  return (hidden * m).sum(axis=-2) / jnp.maximum(m.sum(axis=-2), 1e-9)
