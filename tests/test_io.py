"""Atomic writes leave the old file intact when writing fails."""
import json

import numpy as np
import pytest
import torch

from hmr.utils.io import atomic_open, save_npz, save_torch, write_json


def test_atomic_write_roundtrip(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    save_npz(tmp_path / "a.npz", v=np.arange(3))
    assert np.load(tmp_path / "a.npz")["v"].tolist() == [0, 1, 2]
    save_torch(tmp_path / "a.pt", {"w": torch.ones(2)})
    assert torch.load(tmp_path / "a.pt", weights_only=True)["w"].sum() == 2


def test_failed_write_keeps_previous(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write("partial")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
