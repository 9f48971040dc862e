"""make_synthetic's error paths: a refused rerun says which setting differs and how to start over; a full disk or
an unwritable output folder ends in one line naming the path and the errno (no traceback)."""
import errno
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from hmr.data.synthetic import SetSpec, generate_set
from hmr.data.synthetic import writers
from hmr.utils.io import write_json

REPO = Path(__file__).resolve().parents[1]
TINY = ["--kind", "body", "--no-progress", "--no-contact-sheet", "body.name=b", "body.shard_size=1",
        "body.image_sizes=[[48,40]]", "body.splits={train: 1, val: 0, test: 0}"]


def _tool():
    spec = importlib.util.spec_from_file_location("make_synthetic_tool", REPO / "tools" / "make_synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refused_rerun_names_the_differing_settings_and_how_to_start_over(tmp_path):
    old = SetSpec("body", "s", {"train": 10}, seed=1)
    write_json(tmp_path / "s" / "manifest.json", old.to_dict())
    new = SetSpec("body", "s", {"train": 20}, seed=2)
    with pytest.raises(ValueError) as err:
        generate_set(new, root=str(tmp_path), progress=False)
    msg = str(err.value)
    assert "splits.train: 10 in the folder, 20 now" in msg and "seed: 1 in the folder, 2 now" in msg
    assert "--overwrite" in msg and "another name" in msg and str(tmp_path / "s") in msg
    assert "scene" not in msg  # only what differs


def test_disk_full_while_writing_images_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    def full_disk(path, image, quality):
        raise OSError(errno.ENOSPC, "No space left on device")  # what a write() on a full disk raises: no path

    monkeypatch.setattr(writers, "write_jpeg", full_disk)
    code = _tool().main(["--root", str(tmp_path), *TINY])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(tmp_path / "b" / "images" / "train" / "00000000.jpg") in err
    assert "errno 28" in err and "disk is full" in err


def test_unwritable_output_folder_is_one_line_naming_the_path(tmp_path, monkeypatch, capsys):
    from hmr.data.synthetic import generator

    def read_only(path, obj, indent=2):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(generator, "write_json", read_only)
    code = _tool().main(["--root", str(tmp_path / "ro"), *TINY])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(tmp_path / "ro" / "b" / "manifest.json") in err and "errno 13" in err


def test_output_root_under_a_file_fails_cleanly(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic.py"), "--root",
                           str(tmp_path / "afile" / "sets"), *TINY], capture_output=True, text=True, cwd=str(REPO),
                          timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert str(tmp_path / "afile") in proc.stderr and "errno 20" in proc.stderr
