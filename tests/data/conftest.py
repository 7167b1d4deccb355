import numpy as np
import pytest

from deepdx.data.bundled import MNIST_FILES

from .helpers import idx_bytes, write_bytes


@pytest.fixture
def mnist_folder(tmp_path):
    """Factory: write the four MNIST files (random digits) and return (root, arrays)."""

    def make(n_train=6, n_test=4, gz=True, n_test_labels=None):
        rng = np.random.default_rng(0)
        arrays = {}
        for part, n in (("train", n_train), ("test", n_test)):
            images_stem, labels_stem = MNIST_FILES[part]
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            n_labels = n if part == "train" or n_test_labels is None else n_test_labels
            labels = (np.arange(n_labels) % 10).astype(np.uint8)
            suffix = ".gz" if gz else ""
            write_bytes(tmp_path / f"{images_stem}{suffix}", idx_bytes(images, 0x08))
            write_bytes(tmp_path / f"{labels_stem}{suffix}", idx_bytes(labels, 0x08))
            arrays[part] = (images, labels)
        return tmp_path, arrays

    return make
