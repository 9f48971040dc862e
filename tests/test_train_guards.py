"""tools/train.py and the Trainer under faults (issue 16): existing runs, bad settings, divergence, unwritable
output, stale temporary files, unreadable images with workers, scheduler order, resume with workers."""
import errno
import importlib.util
import json
import logging
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAIN_OVERRIDES, poison_joint_losses
from test_train_e2e import REPO, overrides, run_tool

QUICK = ("train.final_eval=false", "train.checkpoint_every=100")


def _train(out, root, *extra, check=True):
    return run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", out,
                    *overrides(root, *QUICK, *extra), check=check)


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture
def train_tool():
    """tools/train.py's ``main`` imported in-process (logging restored afterwards)."""
    spec = importlib.util.spec_from_file_location("train_tool", REPO / "tools" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield module.main
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# ------------------------------------------------------------------------------------------ item 2
def test_a_new_run_refuses_a_folder_holding_a_run(tiny_synthetic_root, tmp_path):
    out = tmp_path / "run"
    _train(out, tiny_synthetic_root, "train.steps=1")
    before = (out / "checkpoints/last.pt").read_bytes(), (out / "log.csv").read_text()
    proc = _train(out, tiny_synthetic_root, "train.steps=1", check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr and "--overwrite" in proc.stderr, proc.stderr
    assert str(out) in proc.stderr
    _no_traceback(proc)
    assert ((out / "checkpoints/last.pt").read_bytes(), (out / "log.csv").read_text()) == before
    proc = run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", out, "--overwrite",
                    *overrides(tiny_synthetic_root, *QUICK, "train.steps=2"))
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + 2, rows          # header + this run's two steps, nothing appended to the old log
    assert torch.load(out / "checkpoints/last.pt", weights_only=True)["step"] == 2


# ------------------------------------------------------------------------------------------ items 10, 11, 13
@pytest.mark.parametrize("setting, words", [("train.batch_size=0", "train.batch_size"),
                                            ("train.steps=0", "train.steps"),
                                            ("train.log_every=0", "train.log_every")])
def test_non_positive_counts_are_refused(tiny_synthetic_root, tmp_path, setting, words):
    from hmr.config import load_config
    from hmr.engine.trainer import Trainer
    cfg = load_config(REPO / "configs/body_cpu.yaml", overrides(tiny_synthetic_root, setting))
    with pytest.raises(ValueError, match=words + ".*positive"):
        Trainer(cfg, tmp_path / "run")


def test_tool_reports_batch_size_zero_without_traceback(tiny_synthetic_root, tmp_path):
    proc = _train(tmp_path / "run", tiny_synthetic_root, "train.batch_size=0", check=False)
    assert proc.returncode == 2 and "train.batch_size" in proc.stderr
    _no_traceback(proc)


def test_unwritable_output_folder_is_one_message(tiny_synthetic_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = _train(blocker / "run", tiny_synthetic_root, "train.steps=1", check=False)
    assert proc.returncode != 0
    _no_traceback(proc)
    assert "error:" in proc.stderr and str(blocker) in proc.stderr and "errno 20" in proc.stderr.lower(), proc.stderr


def test_full_disk_while_saving_is_one_message(tiny_synthetic_root, tmp_path, monkeypatch, capsys, train_tool):
    import hmr.engine.checkpoint as ckpt

    def full_disk(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "save_torch", full_disk)
    out = tmp_path / "run"
    rc = train_tool(["--config", str(REPO / "configs/body_cpu.yaml"), "--out", str(out),
                     *overrides(tiny_synthetic_root, *QUICK, "train.steps=1")])
    err = capsys.readouterr().err
    assert rc != 0
    assert "No space left on device" in err and "last.pt" in err and f"errno {errno.ENOSPC}" in err.lower(), err
    assert err.count("error:") == 1 and "Traceback" not in err, err


def test_no_tensorboard_path_printed_when_tensorboard_is_off(tiny_synthetic_root, tmp_path):
    proc = _train(tmp_path / "run", tiny_synthetic_root, "train.steps=1")
    assert "/tensorboard" not in proc.stdout, proc.stdout
    assert not (tmp_path / "run" / "tensorboard").exists()


# ------------------------------------------------------------------------------------------ items 9, 15
def test_diverging_run_stops_with_the_divergence_error(tiny_synthetic_root, tmp_path):
    proc = _train(tmp_path / "run", tiny_synthetic_root, "train.lr=1e6", "train.steps=40",
                  "train.max_consecutive_nonfinite=3", check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "3 consecutive non-finite steps" in proc.stderr
    _no_traceback(proc)


def test_skipped_first_step_steps_the_schedule_without_warning(tiny_synthetic_root, tmp_path):
    from hmr.config import load_config
    from hmr.engine.trainer import Trainer, TrainingDiverged
    cfg = load_config(REPO / "configs/body_cpu.yaml",
                      overrides(tiny_synthetic_root, *QUICK, "train.steps=6", "train.max_consecutive_nonfinite=2",
                                "train.schedule={kind: constant, warmup_steps: 4}"))
    trainer = Trainer(cfg, tmp_path / "nan")
    poison_joint_losses(trainer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TrainingDiverged):
            trainer.run()
    assert not [w for w in caught if "lr_scheduler" in str(w.message)], [str(w.message) for w in caught]
    # the schedule still follows the step counter: warm-up factor (step + 1) / 4 at step 2 (the last group is the
    # head at train.lr; the encoder's group runs at train.backbone_lr_scale of it)
    assert trainer.optimizer.param_groups[-1]["lr"] == pytest.approx(float(cfg.train.lr) * 3 / 4)


# ------------------------------------------------------------------------------------------ item 14
def _copy_body_set(src_root, dst_root):
    shutil.copytree(Path(src_root) / "body_quick", Path(dst_root) / "body_quick")
    return dst_root


def test_unreadable_count_is_what_training_consumed(tiny_synthetic_root, tmp_path):
    """With workers prefetching ahead, only the batches the steps used are counted."""
    from hmr.config import load_config
    from hmr.data import build_mixed_dataset
    from hmr.engine.sampler import epoch_order
    root = _copy_body_set(tiny_synthetic_root, tmp_path / "data")
    cfg = load_config(REPO / "configs/body_cpu.yaml", overrides(root))
    mixture = build_mixed_dataset(cfg)
    order = epoch_order(len(mixture), int(cfg.train.seed), 0)
    batch = int(cfg.train.batch_size)
    for key in (int(order[0]), int(order[batch * 2])):   # in batch 0 (consumed) and batch 2 (prefetched only)
        part, index = mixture.locate(key)
        Path(mixture.datasets[part].annotation(index).image_path).write_bytes(b"broken")
    out = tmp_path / "run"
    _train(out, root, "train.steps=1", "train.num_workers=2", "train.log_every=1")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unreadable_images"] == 1, summary


def test_stale_checkpoint_temp_files_are_removed_on_start(tiny_synthetic_root, tmp_path):
    out = tmp_path / "run"
    stale = out / "checkpoints" / ".last.pt.k1ll3d.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    _train(out, tiny_synthetic_root, "train.steps=1")
    assert not stale.exists()
    assert list((out / "checkpoints").iterdir()) == [out / "checkpoints" / "last.pt"]


# ------------------------------------------------------------------------------------------ item 4
def test_resume_with_workers_is_exact(tiny_synthetic_root, tmp_path):
    """Two data workers: 3 steps, stop, resume to 6 == 6 steps straight (every model and optimizer tensor)."""
    common = ("train.num_workers=2", "train.schedule={kind: constant, warmup_steps: 0}", "train.log_every=1",
              "train.deterministic=true")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _train(straight, tiny_synthetic_root, "train.steps=6", *common)
    _train(resumed, tiny_synthetic_root, "train.steps=3", *common)
    stale = resumed / "checkpoints" / ".last.pt.x.tmp"
    stale.write_bytes(b"")
    first = torch.load(resumed / "checkpoints/last.pt", weights_only=True)
    assert first["extra"]["train_seconds"] > 0
    first["extra"]["train_seconds"] = 1000.0     # training time carries on across the resume
    torch.save(first, resumed / "checkpoints/last.pt")
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", resumed, "--resume",
             *overrides(tiny_synthetic_root, *QUICK, "train.steps=6", *common))
    assert not stale.exists()
    a = torch.load(straight / "checkpoints/last.pt", weights_only=True)
    b = torch.load(resumed / "checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    assert b["extra"]["train_seconds"] > 1000.0
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (index, name)
    rows = [r.split(",") for r in (resumed / "log.csv").read_text().splitlines()]
    assert len(rows) == 7        # header + one row per step, no duplicates
