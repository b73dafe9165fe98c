"""Shared fixtures."""
from __future__ import annotations

import os
import pathlib

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]
# The lossy CIFAR-10 copy shipped next to the checkout (see ../shared/data/README.md).
CIFAR10_JPEG_ENV = 'DAWNJAX_CIFAR10_JPEG'
_CIFAR10_JPEG_DEFAULT = _REPO.parent / 'shared' / 'data' / 'cifar10-jpeg.tar.gz'


@pytest.fixture(scope='session')
def cifar10_jpeg_tarball() -> pathlib.Path:
  """Path of cifar10-jpeg.tar.gz: $DAWNJAX_CIFAR10_JPEG, else <repo>/../shared/data/; skips if
  absent."""
  path = pathlib.Path(os.environ.get(CIFAR10_JPEG_ENV) or _CIFAR10_JPEG_DEFAULT)
  if not path.is_file():
    pytest.skip(f'real CIFAR-10 JPEG tarball not found at {path}; set ${CIFAR10_JPEG_ENV} to '
                'its path to run this test')
  return path


@pytest.fixture(scope='session')
def cifar10_jpeg(cifar10_jpeg_tarball, request, tmp_path_factory):
  """The real 60,000-image cifar10_jpeg dataset (ImageClassificationData, memory-mapped).

  Decoded once (5-15 s on 2 cores) into the pytest cache, so later sessions only map it; the
  cache entry is keyed on the tarball's path, size and mtime. Skips if the tarball is absent.
  """
  from dawnjax.data.cifar10 import load_cifar10  # pylint: disable=import-outside-toplevel
  path = cifar10_jpeg_tarball
  cache = getattr(request.config, 'cache', None)  # None under -p no:cacheprovider
  cache_dir = (cache.mkdir('dawnjax_cifar10_jpeg') if cache is not None else
               tmp_path_factory.mktemp('dawnjax_cifar10_jpeg'))
  return load_cifar10(str(path), cache_dir=str(cache_dir))
