"""ImageNet-style input pipelines: class-folder JPEG trees, TFDS imagenet2012, synthetic batches.

Modules (import them directly; this package imports nothing so that decoding worker processes,
which load `worker`, start without JAX):
  tree        finds `train/<class>/*.JPEG` + `val|validation|test/<class>/...` in a folder or tar.
  readers     picklable random-access readers of encoded images (folder, tar offsets, TFDS).
  transforms  random-resized-crop / centre-crop boxes (pure) and Pillow decode-crop-resize.
  worker      what each decoding process runs: decode rows straight into a shared batch buffer.
  pipeline    batch plans (shuffle, per-host slices, crop randomness) and the host loader with
              its shared-memory ring and device prefetch thread.
  tfds_source TFDS `imagenet2012` as a reader (tensorflow_datasets imported lazily).
"""
