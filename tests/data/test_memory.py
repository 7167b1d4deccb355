"""Available memory (meminfo, cgroups) and loads larger than memory: clear errors or mmap."""

import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from deepdx.data import _memory
from deepdx.data._memory import (
    MEMORY_HEADROOM,
    UNKNOWN_MEMORY,
    available_memory,
    check_fits_in_memory,
    format_bytes,
)
from deepdx.data.dataset import from_arrays
from deepdx.data.idx import load_idx, read_idx, write_idx
from deepdx.data.npz import read_npz
from deepdx.data.splits import prepare, split
from deepdx.data.standardize import Standardizer
from deepdx.exceptions import DataError

GIB = 2**30
UNLIMITED_V1 = 9223372036854771712  # what cgroup v1 writes for "no limit"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def little_memory(monkeypatch):
    """Pretend only ``limit`` bytes of memory are available."""

    def set_limit(limit):
        monkeypatch.setattr(_memory, "available_memory", lambda: limit)

    return set_limit


# ----------------------------------------------------------------------------- sources


def test_meminfo_available_reads_kib_as_bytes(tmp_path):
    meminfo = write(tmp_path / "meminfo", "MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable: 64 kB\n")
    assert _memory._meminfo_available(meminfo) == 64 * 1024


def test_meminfo_available_is_none_without_the_key(tmp_path):
    assert _memory._meminfo_available(write(tmp_path / "meminfo", "MemFree: 10 kB\n")) is None
    assert _memory._meminfo_available(tmp_path / "missing") is None


def test_cgroup_v2_limit_minus_working_set_of_each_limited_level(tmp_path):
    root = tmp_path / "cgroup"
    self_cgroup = write(tmp_path / "self", "0::/outer/inner\n")
    write(root / "outer/inner/memory.max", "10000\n")
    write(root / "outer/inner/memory.current", "6000\n")
    write(root / "outer/inner/memory.stat", "anon 4000\ninactive_file 1500\n")
    write(root / "outer/memory.max", "max\n")  # no limit at this level
    write(root / "outer/memory.current", "9000\n")
    write(root / "memory.max", "8000\n")
    write(root / "memory.current", "7000\n")
    values = _memory._cgroup_available(self_cgroup, root)
    assert sorted(values) == [1000, 10000 - (6000 - 1500)]


def test_cgroup_v1_memory_controller_and_unlimited_levels(tmp_path):
    root = tmp_path / "cgroup"
    self_cgroup = write(tmp_path / "self", "5:cpu,cpuacct:/job\n4:memory:/job\n0::/\n")
    write(root / "memory/job/memory.limit_in_bytes", "4096\n")
    write(root / "memory/job/memory.usage_in_bytes", "3000\n")
    write(root / "memory/job/memory.stat", "cache 900\ntotal_inactive_file 1000\n")
    write(root / "memory/memory.limit_in_bytes", f"{UNLIMITED_V1}\n")
    write(root / "memory/memory.usage_in_bytes", "123456\n")
    assert _memory._cgroup_available(self_cgroup, root) == [4096 - (3000 - 1000)]


def test_available_memory_takes_the_smallest_source(tmp_path):
    meminfo = write(tmp_path / "meminfo", "MemAvailable: 8 kB\n")  # 8192 bytes
    root = tmp_path / "cgroup"
    self_cgroup = write(tmp_path / "self", "0::/\n")
    write(root / "memory.max", "5000\n")
    write(root / "memory.current", "1000\n")
    assert _memory._available_memory(meminfo, self_cgroup, root) == 4000
    write(root / "memory.max", "100000\n")
    assert _memory._available_memory(meminfo, self_cgroup, root) == 8192


def test_available_memory_falls_back_to_sysconf_then_to_unknown(tmp_path, monkeypatch):
    missing = tmp_path / "missing"
    sizes = {"SC_AVPHYS_PAGES": 10, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(_memory.os, "sysconf", lambda name: sizes[name])
    assert _memory._available_memory(missing, missing, missing) == 10 * 4096

    def unsupported(name):
        raise ValueError(name)

    monkeypatch.setattr(_memory.os, "sysconf", unsupported)
    assert _memory._available_memory(missing, missing, missing) == UNKNOWN_MEMORY


def test_available_memory_is_positive_and_at_most_meminfo():
    system = _memory._meminfo_available(_memory.Path("/proc/meminfo"))
    value = available_memory()
    assert 0 < value <= (system if system is not None else UNKNOWN_MEMORY)


# ----------------------------------------------------------------------------- the check


def test_check_fits_in_memory_message_names_sizes_and_fix(little_memory):
    little_memory(int(20.1 * GIB))
    with pytest.raises(DataError) as info:
        check_fits_in_memory(
            int(37.4 * GIB), what="loading 'train-images.idx3-ubyte'", fix="use mmap=True."
        )
    assert str(info.value).startswith(
        "loading 'train-images.idx3-ubyte' needs 37.4 GiB but only 20.1 GiB of memory is available"
    )
    assert str(info.value).endswith("; use mmap=True.")


def test_check_fits_in_memory_keeps_the_headroom(little_memory):
    little_memory(1000)
    check_fits_in_memory(int(MEMORY_HEADROOM * 1000), what="x", fix="y.")
    with pytest.raises(DataError, match="needs 901 B"):
        check_fits_in_memory(int(MEMORY_HEADROOM * 1000) + 1, what="x", fix="y.")


@given(st.integers(min_value=0, max_value=2**70))
def test_format_bytes_round_trips_within_rounding(nbytes):
    text = format_bytes(nbytes)
    value, unit = text.split(" ")
    scale = 1024 ** ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].index(unit)
    assert abs(float(value) * scale - nbytes) <= 0.05 * scale
    assert unit == "B" or 1.0 <= float(value) <= 1024.0


# ----------------------------------------------------------------------------- readers


def test_read_npz_larger_than_memory_fails_fast_but_maps(tmp_path, little_memory):
    X = np.arange(4000, dtype=np.float32).reshape(100, 40)
    path = tmp_path / "big.npz"
    np.savez(path, X=X)
    expected = read_npz(path).X
    little_memory(10_000)  # X alone is 16,000 bytes
    with pytest.raises(DataError, match=r"reading 'big.npz' needs 15.6 KiB .*mmap=True"):
        read_npz(path)
    mapped = read_npz(path, mmap=True)  # nothing of X is allocated
    np.testing.assert_array_equal(mapped.X, expected)


def test_read_npz_compressed_too_large_suggests_saving_uncompressed(tmp_path, little_memory):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, X=np.zeros((100, 40), np.float32))
    little_memory(10_000)
    with pytest.raises(DataError, match=r"np\.savez \(not np\.savez_compressed\).*mmap=True"):
        read_npz(path)


def test_read_npz_mapped_x_of_another_dtype_counts_its_float32_copy(tmp_path, little_memory):
    path = tmp_path / "bytes.npz"
    np.savez(path, X=np.zeros((100, 40), np.uint8))  # 4,000 bytes on disk, 16,000 as float32
    little_memory(10_000)
    with pytest.raises(DataError, match=r"needs 15.6 KiB .*save X as C-ordered float32"):
        read_npz(path, mmap=True)


def test_read_idx_larger_than_memory_fails_fast_but_maps(tmp_path, little_memory):
    images = np.arange(3000, dtype=np.uint8).reshape(30, 10, 10)
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, images)
    little_memory(5000)  # reading holds the 3,000 bytes twice
    with pytest.raises(
        DataError, match=r"reading IDX file 'x-idx3-ubyte' needs 5.9 KiB.*mmap=True"
    ):
        read_idx(path)
    np.testing.assert_array_equal(read_idx(path, mmap=True), images)


def test_read_idx_gz_too_large_suggests_decompressing(tmp_path, little_memory):
    path = tmp_path / "x-idx3-ubyte.gz"
    write_idx(path, np.zeros((30, 10, 10), np.uint8))
    little_memory(5000)
    with pytest.raises(DataError, match=r"gunzip x-idx3-ubyte.gz\) and read it with mmap=True"):
        read_idx(path)


def test_load_idx_float32_features_too_large_explain_the_npz_route(tmp_path, little_memory):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((30, 10, 10), np.uint8))
    little_memory(10_000)  # 3,000 raw bytes map, but 12,000 float32 bytes do not fit
    with pytest.raises(DataError, match=r"converting IDX file .* needs 11.7 KiB.*read_npz"):
        load_idx(path, mmap=True)


# ----------------------------------------------------------------------------- split, scale


def test_split_checks_memory_before_copying_rows(tmp_path, little_memory):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((100, 40), np.float32), y=np.arange(100) % 2)
    dataset = read_npz(path, mmap=True)
    little_memory(16_000)  # the splits would copy 16,000 bytes
    with pytest.raises(DataError, match=re.escape("splitting 'd' (the splits copy X) needs")):
        split(dataset)


def test_standardizer_transform_checks_memory_first(little_memory):
    data = from_arrays(np.ones((100, 40)))
    scaler = Standardizer().fit(data)
    little_memory(16_000)  # a new float32 X is 16,000 bytes
    with pytest.raises(DataError, match=r"standardizing 'arrays' \(a new float32 X\) needs"):
        scaler.transform(data)


def test_prepare_of_mapped_data_equals_prepare_of_read_data(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.normal(size=(60, 1, 4, 4)).astype(np.float32), y=np.arange(60) % 3)
    read, scaler = prepare(read_npz(path))
    mapped, mapped_scaler = prepare(read_npz(path, mmap=True))
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(mapped, part).X, getattr(read, part).X)
    assert scaler is not None and mapped_scaler is not None
    np.testing.assert_array_equal(mapped_scaler.mean_, scaler.mean_)


def test_finite_check_in_row_chunks_finds_every_bad_row(monkeypatch):
    import deepdx.data.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "_FINITE_CHECK_BYTES", 3 * 40 * 4)  # 3 rows a chunk
    X = np.ones((100, 40), np.float32)
    X[[4, 50, 99], [0, 7, 39]] = [np.nan, np.inf, -np.inf]
    with pytest.raises(DataError, match=r"3 NaN or infinite values in 3 rows \(first rows: "):
        from_arrays(X)
    with pytest.raises(DataError, match=re.escape("[4, 50, 99]")):
        from_arrays(X)


def test_fit_trains_on_memory_mapped_data_without_a_copy(tmp_path):
    from deepdx.train import TrainConfig, fit
    from deepdx.train.objectives import tensor_view

    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.normal(size=(40, 3)).astype(np.float32), y=np.arange(40) % 2)
    mapped = read_npz(path, mmap=True)
    assert np.shares_memory(tensor_view(mapped.X).numpy(), mapped.X)  # and no warning
    loaded = read_npz(path)
    config = TrainConfig(epochs=2, batch_size=8, seed=0)
    models = []
    for data in (mapped, loaded):
        torch.manual_seed(0)
        models.append(torch.nn.Linear(3, 2))
        fit(models[-1], data, config=config)
    assert torch.equal(models[0].weight, models[1].weight)
