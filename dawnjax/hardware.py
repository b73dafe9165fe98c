"""What the accelerator can do: peak dense bf16 rates for MFU.

Where this workplace measured a ceiling (H100/H200: an 8192^3 bf16 matmul at ~790 TFLOP/s, see
../shared/anchors/README.md) that figure is used instead of the datasheet's, so MFU is against
what the chip really reaches. Others are vendor datasheet dense bf16 figures per chip.
"""
from __future__ import annotations

# (substring of jax's device_kind, lower-case) -> (peak dense bf16 TFLOP/s per device, source)
PEAK_BF16_TFLOPS: tuple[tuple[str, float, str], ...] = (
    ('h200', 790.0, 'measured matmul ceiling, this workplace (datasheet 989)'),
    ('h100', 790.0, 'measured matmul ceiling, this workplace (datasheet 989)'),
    ('a100', 312.0, 'NVIDIA A100 datasheet'),
    ('v100', 125.0, 'NVIDIA V100 datasheet (fp16 tensor core)'),
    ('tpu v6', 918.0, 'Cloud TPU v6e datasheet'),
    ('tpu v5p', 459.0, 'Cloud TPU v5p datasheet'),
    ('tpu v5 lite', 197.0, 'Cloud TPU v5e datasheet'),
    ('tpu v5e', 197.0, 'Cloud TPU v5e datasheet'),
    ('tpu v4', 275.0, 'Cloud TPU v4 datasheet'),
    ('tpu v3', 123.0, 'Cloud TPU v3 datasheet'),
    ('tpu v2', 45.0, 'Cloud TPU v2 datasheet'),
)


def peak_tflops(device_kind: str) -> tuple[float | None, str]:
  """Peak dense bf16 TFLOP/s of one device, or (None, reason) when unknown (e.g. CPU)."""
  kind = device_kind.lower()
  for key, tflops, source in PEAK_BF16_TFLOPS:
    if key in kind:
      return tflops, source
  return None, f'no peak figure for device kind {device_kind!r}'


def hardware_tag(device_kind: str, num_devices: int) -> str:
  """Short tag for DAWNBench file names, e.g. '1xH100'."""
  kind = device_kind.lower()
  for key in ('h200', 'h100', 'a100', 'v100', 'tpu v6', 'tpu v5p', 'tpu v5 lite', 'tpu v5e', 'tpu v4', 'tpu v3', 'tpu v2'):
    if key in kind:
      return f"{num_devices}x{key.replace('tpu ', 'TPUv').replace(' lite', 'e').upper()}"
  return f"{num_devices}x{device_kind.replace(' ', '-') or 'CPU'}"
