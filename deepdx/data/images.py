"""Read a folder of images, one sub-folder per class, into a :class:`~deepdx.data.Dataset`.

Layout::

    root/
        cat/  001.png  002.jpg ...
        dog/  001.png ...

Classes are the sub-folder names in sorted order. Images are read one file at a time
with Pillow (imported only when needed), converted to grayscale or RGB, optionally
resized, and stacked into X of shape (n, C, H, W) with values in [0, 1].

Files are opened with the decoders of :data:`IMAGE_SUFFIXES` only (PNG, JPEG, BMP, GIF,
TIFF, WebP, PPM), whatever their content: Pillow would otherwise try every format it knows,
some of which (EPS) start an external interpreter. An image with more pixels than
``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's decompression-bomb limit) is refused.

Symbols
-------
n      number of images
C      channels: 1 (grayscale) or 3 (RGB)
H, W   image height and width in pixels
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np

from deepdx.data._optional import require
from deepdx.data.dataset import Dataset
from deepdx.exceptions import DataError, InvalidParameterError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["IMAGE_SUFFIXES", "read_image_folder"]

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)  # fmt: skip
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")  # Pillow names of the suffixes
# what Pillow raises for a damaged file (SyntaxError: "broken PNG file")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)


def read_image_folder(
    root: str | os.PathLike[str],
    *,
    size: int | tuple[int, int] | None = None,
    color: Literal["auto", "gray", "rgb"] = "auto",
    name: str | None = None,
) -> Dataset:
    """Load ``root/<class>/<image>`` files as a classification dataset.

    Parameters
    ----------
    root : str or path-like
        Folder with one sub-folder per class (at least two); files with other suffixes
        than :data:`IMAGE_SUFFIXES` are ignored.
    size : int or (int, int), optional
        Resize every image to ``(size, size)`` or ``(H, W)`` (bilinear, antialiased).
        Without it all images must already share one shape.
    color : {"auto", "gray", "rgb"}, default="auto"
        Channels: "auto" gives grayscale when every image is grayscale, else RGB.
    name : str, optional
        Dataset name; defaults to the folder name.

    Returns
    -------
    Dataset
        X float32 of shape (n, C, H, W) in [0, 1] (pixel values / 255), y int64 class
        indices, class names = sub-folder names.

    Raises
    ------
    DataError
        If the folder has fewer than two class folders, a class folder has no images,
        an image cannot be read (damaged, not one of the listed formats, or over Pillow's
        pixel limit), or shapes differ and ``size`` is not given.
    DeepdxError
        If Pillow is not installed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for label, shade in [("dark", 10), ("light", 240)]:
    ...     (root / label).mkdir()
    ...     Image.new("L", (6, 4), shade).save(root / label / "a.png")
    >>> ds = read_image_folder(root)
    >>> ds.X.shape, ds.class_names, ds.y.tolist()
    ((2, 1, 4, 6), ('dark', 'light'), [0, 1])
    """
    if color not in ("auto", "gray", "rgb"):
        raise InvalidParameterError(f"color must be 'auto', 'gray' or 'rgb'; got {color!r}.")
    shape = None if size is None else _as_hw(size)
    root = Path(root)
    files, y, classes = _list_images(root)
    Image = require("PIL.Image", "reading an image folder", "pillow")
    mode = _pick_mode(files, color, Image)
    arrays = [_read_image(path, mode, shape, Image) for path in files]
    X = _stack(arrays, files)  # (n, H, W) or (n, H, W, 3), uint8
    X = X[:, None] if X.ndim == 3 else X.transpose(0, 3, 1, 2)  # (n, C, H, W)
    return Dataset(
        X.astype(np.float32) / np.float32(255.0),
        y,
        "classification",
        name or root.name,
        class_names=classes,
    )


# ----------------------------------------------------------------------------- helpers


def _list_images(root: Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Return image paths, their class indices and the sorted class names."""
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist or is not a folder.")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DataError(
            f"image folder {str(root)!r} needs one sub-folder per class, at least two; "
            f"found {found}. Put each class's images in its own sub-folder."
        )
    files: list[Path] = []
    labels: list[int] = []
    for index, label in enumerate(classes):
        members = sorted(p for p in (root / label).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not members:
            raise DataError(
                f"class folder {label!r} in {str(root)!r} has no image files (suffixes "
                f"{', '.join(IMAGE_SUFFIXES)}); add images or remove the folder."
            )
        files += members
        labels += [index] * len(members)
    return files, np.asarray(labels, dtype=np.int64), classes


def _pick_mode(files: list[Path], color: str, Image: ModuleType) -> str:
    """Return the Pillow mode to convert to: "L" or "RGB"."""
    if color != "auto":
        return "L" if color == "gray" else "RGB"
    for path in files:
        with _open(path, Image) as image:  # reads the header only
            if image.mode not in _GRAY_MODES:
                return "RGB"
    return "L"


def _read_image(
    path: Path, mode: str, shape: tuple[int, int] | None, Image: ModuleType
) -> np.ndarray:
    """Read one image as uint8 (H, W) or (H, W, 3), resized to ``shape`` = (H, W)."""
    with _open(path, Image) as image:
        try:
            image = image.convert(mode)  # decodes the pixels
            if shape is not None and image.size != (shape[1], shape[0]):
                image = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
        except _DECODE_ERRORS as exc:
            raise _unreadable(path, exc) from exc


def _open(path: Path, Image: ModuleType) -> PILImage:
    """Open an image (header only) or raise a DataError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path, formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"image {str(path)!r} has more pixels than Pillow's limit of "
            f"{Image.MAX_IMAGE_PIXELS} ({exc}); it is refused as a possible decompression "
            "bomb. Shrink it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file."
        ) from exc
    except _DECODE_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: Exception) -> DataError:
    """Build the error for an image file that Pillow cannot decode."""
    return DataError(f"image {str(path)!r} cannot be read ({exc}); replace or remove the file.")


def _stack(arrays: list[np.ndarray], files: list[Path]) -> np.ndarray:
    """Stack equally shaped images, or name two files whose shapes differ."""
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        other = next(i for i, a in enumerate(arrays) if a.shape != first)
        raise DataError(
            f"images differ in shape: {files[0].name!r} is {first[:2]} but "
            f"{files[other].name!r} is {arrays[other].shape[:2]} (H, W). Pass size=(H, W) "
            "to resize them all to one shape."
        )
    return np.stack(arrays)


def _as_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``size`` as a (H, W) pair of positive ints."""
    hw = (
        (size, size)
        if isinstance(size, int)
        else tuple(size)
        if isinstance(size, tuple | list)
        else ()
    )
    if len(hw) != 2 or not all(isinstance(s, int) and s > 0 for s in hw):
        raise InvalidParameterError(
            f"size must be a positive int or a pair (H, W) of positive ints; got {size!r}."
        )
    return (int(hw[0]), int(hw[1]))
