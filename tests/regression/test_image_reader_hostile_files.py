"""Regressions of read_image_folder on hostile files (found by the security suite and fuzzer)."""

import PIL.EpsImagePlugin
import pytest
from PIL import Image

from deepdx.data import read_image_folder
from deepdx.exceptions import DataError
from tests.security import payloads


def _folder(root, name: str, data: bytes):
    for label in ("a", "b"):
        (root / label).mkdir(parents=True, exist_ok=True)
    (root / "a" / "ok.png").write_bytes(payloads.png_bytes())
    (root / "b" / name).write_bytes(data)
    return root


def test_read_image_folder_truncated_png_raises_data_error(tmp_path):
    # was: OSError "image file is truncated" from the pixel decoding, outside the check
    root = _folder(tmp_path, "x.png", payloads.png_bytes(64, 64)[:-40])
    with pytest.raises(DataError, match=r"x.png' cannot be read \(image file is truncated"):
        read_image_folder(root)


def test_read_image_folder_decompression_bomb_raises_data_error(tmp_path):
    # was: PIL.Image.DecompressionBombError
    root = _folder(tmp_path, "x.png", payloads.png_header_only(20000, 20000))
    with pytest.raises(DataError, match="more pixels than Pillow's limit"):
        read_image_folder(root)


def test_read_image_folder_image_over_pixel_warning_limit_raises_data_error(tmp_path, monkeypatch):
    # was: PIL.Image.DecompressionBombWarning (an error under filterwarnings=error)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    root = _folder(tmp_path, "x.png", payloads.png_bytes(40, 40))
    with pytest.raises(DataError, match="more pixels than Pillow's limit of 1000"):
        read_image_folder(root)


def test_read_image_folder_does_not_open_eps_content_named_png(tmp_path, monkeypatch):
    # was: Pillow identified the EPS by content and started Ghostscript to decode it
    calls = []
    monkeypatch.setattr(PIL.EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a))
    root = _folder(tmp_path, "x.png", payloads.EPS_BYTES)
    with pytest.raises(DataError, match="cannot identify image file"):
        read_image_folder(root)
    assert calls == []
