"""Data for deepdx: the ``Dataset`` record, loaders, readers, splits and standardization.

=====================  ==============================================================
name                   what
=====================  ==============================================================
Dataset, from_arrays   the validated record every part of deepdx passes around
load, list_datasets    bundled datasets by name, user files by suffix
read_csv, read_npz     user files: CSV with a header row, NPZ archives (no pickle)
load_idx, read_idx     IDX (MNIST-format) files, gzipped or not; ``write_idx``
read_image_folder      one sub-folder of images per class
make_curves            the CURVES images of Hinton & Salakhutdinov (2006)
load_patches           natural-image patches from scikit-image's photographs
addition_problem       the addition problem of Hochreiter & Schmidhuber (1997), for RNNs
split, Splits          seeded, stratified train / val / test splits
Standardizer, prepare  standardization fitted on the training split only
=====================  ==============================================================
"""

from __future__ import annotations

from deepdx.data.csv import read_csv
from deepdx.data.curves import make_curves
from deepdx.data.dataset import TASKS, Dataset, Task, from_arrays
from deepdx.data.idx import load_idx, read_idx, write_idx
from deepdx.data.images import read_image_folder
from deepdx.data.npz import read_npz
from deepdx.data.patches import load_patches, zca_whiten
from deepdx.data.registry import DatasetInfo, list_datasets, load
from deepdx.data.sequences import ADDITION_TOLERANCE, addition_problem
from deepdx.data.splits import Splits, prepare, split
from deepdx.data.standardize import Standardizer

__all__ = [
    "ADDITION_TOLERANCE",
    "TASKS",
    "Dataset",
    "DatasetInfo",
    "Splits",
    "Standardizer",
    "Task",
    "addition_problem",
    "from_arrays",
    "list_datasets",
    "load",
    "load_idx",
    "load_patches",
    "make_curves",
    "prepare",
    "read_csv",
    "read_idx",
    "read_image_folder",
    "read_npz",
    "split",
    "write_idx",
    "zca_whiten",
]
