"""Inference: the trained model saved for serving, its jax.export artifact, the batch-1 latency harness.

`export` saves/loads a model directory (orbax variables + model.json); `artifact` writes/loads a
self-contained jax.export artifact (StableHLO + variables) that runs without the training code;
`latency` times classification one item at a time (DAWNBench's rule); `models` rebuilds a task's
served function from model.json.
"""
