"""atomic_path: the destination appears whole or keeps its old content."""

import numpy as np
import pytest

from hpcaet.io import atomic_path


def test_success_moves_the_file_into_place_and_keeps_the_suffix(tmp_path):
    dest = tmp_path / "a.npy"
    with atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npy" and tmp.name.startswith(".")
        np.save(tmp, np.arange(3))  # np.save would append .npy to another suffix
    np.testing.assert_array_equal(np.load(dest), [0, 1, 2])
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    dest = tmp_path / "table.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.txt"]
