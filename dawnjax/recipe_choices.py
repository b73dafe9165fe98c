"""The named choices recipes are validated against, importable without JAX, Flax or optax.

Entry points define and check their flags from these before JAX's backend starts; the models and
the optimizers import the same names, so there is one list of each.
"""

# Conv-block nonlinearities of the airbench nets (models/airbench.activation_fn).
ACTIVATIONS = ('gelu', 'silu')
# 'flax': nn.BatchNorm then the activation, differentiated by autodiff; 'fused': BatchNormAct, the
# same forward with a two-pass hand-written backward (dawnjax/models/batchnorm.py).
BN_IMPLS = ('flax', 'fused')
# The whitening layer (a k x k VALID conv on the 3-channel image, then GELU): 'conv' = a cuDNN
# convolution; 'elementwise' = the same sums written as multiply-adds of shifted slices, which XLA
# fuses with the bias and the GELU into one pass (models/airbench.PatchWhiten); 'matmul' = the same
# sums as one matmul of the k x k patches (K = 12) by the kernel (PatchWhiten form='matmul');
# 'pallas' = the sums, the bias and the GELU as one Pallas kernel (models/airbench.WhitenGelu).
WHITEN_IMPLS = ('conv', 'elementwise', 'matmul', 'pallas')
# Block1's first conv (3x3, the whitened channels in): 'conv' = nn.Conv; 'kw_folded' = the same conv
# with its horizontal taps gathered into channels, a 3x1 conv on 3x the channels
# (models/airbench.KwFoldedConv); 'padded_igemm' = the whitened input carries zero channels up to 32,
# cuDNN's forward on them, the filter gradient from a Pallas implicit GEMM (models/airbench.PaddedIgemmConv);
# 'padded_igemm_pool' = the same with the argmax max-pool after it fused into that filter gradient's loads
# (the full-size output gradient is never written; needs the argmax pool; measured +1.7..1.9% on an H200).
CONV1_IMPLS = ('conv', 'kw_folded', 'padded_igemm', 'padded_igemm_pool')
# The impls whose whitened input carries zero channels up to a multiple of 32.
PADDED_CONV1_IMPLS = ('padded_igemm', 'padded_igemm_pool')
# Newton-Schulz quintic coefficients (a, b, c) of Muon's orthogonalisation (Keller Jordan's).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
