"""Downloads a file, verifying its md5 before it appears under its final name."""
from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
import urllib.parse
import urllib.request

from dawnjax.errors import DataError

CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
CIFAR10_MD5 = 'c58f30108f718f92721af3b95e74349a'
_CHUNK = 1 << 20


def download(url: str, dest_dir: str, *, md5: str, timeout_s: float = 10.0) -> str:
  """Fetches `url` into `dest_dir` under its own base name; returns the file's path.

  The body streams into a temporary file that is renamed only once its md5 matches, so an
  interrupted or corrupted download never looks like a finished one.

  Args:
    url: what to fetch.
    dest_dir: the --data_dir folder to store it in (created if missing).
    md5: expected hex digest of the body.
    timeout_s: limit on connecting and on each read, so that a machine without internet
      fails in seconds rather than hanging.

  Raises:
    DataError: unreachable, interrupted, or the checksum does not match.
  """
  final = os.path.join(dest_dir, posixpath.basename(urllib.parse.urlparse(url).path))
  tmp = None
  try:
    os.makedirs(dest_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(final)}.', suffix='.part',
                               dir=dest_dir)
    digest = hashlib.md5(usedforsecurity=False)
    with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
      while chunk := response.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
    if digest.hexdigest() != md5:
      raise DataError(f'{url}: downloaded file has md5 {digest.hexdigest()}, expected {md5}; '
                      f'retry, or download it yourself into --data_dir={dest_dir}')
    os.replace(tmp, final)
    tmp = None
  except OSError as e:  # URLError, timeouts, refused connections and disk errors alike
    raise DataError(f'cannot download {url} into --data_dir={dest_dir} ({e}); this machine may '
                    'have no internet access: copy CIFAR-10 into --data_dir instead') from None
  finally:
    if tmp is not None and os.path.exists(tmp):
      os.remove(tmp)
  return final
