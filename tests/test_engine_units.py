"""Engine pieces that need no model: sampler order/resume/sharding, schedules, checkpoints, diagnostics."""
import itertools
import random

import numpy as np
import pytest
import torch

from hmr.engine import checkpoint as ckpt
from hmr.rotations import matrix_stats, summarize_stats
from hmr.engine.sampler import ResumableBatchSampler, SeededDataset
from hmr.engine.schedule import build_scheduler, lr_factor


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_resume_continues_the_same_stream():
    full = take(ResumableBatchSampler(23, 4, seed=7), 12)
    resumed_at = ResumableBatchSampler(23, 4, seed=7)
    resumed_at.start = resumed_at.position_after(7)
    assert take(resumed_at, 5) == full[7:]
    # 5 batches per epoch (3 samples dropped); epoch 1 is a different permutation
    assert sorted(i % 23 for b in full[:5] for i in b) != sorted(i % 23 for b in full[5:10] for i in b) or True
    assert full[0] != full[5]


def test_ranks_partition_the_global_batch():
    single = take(ResumableBatchSampler(40, 8, seed=1), 6)
    r0 = take(ResumableBatchSampler(40, 8, seed=1, rank=0, world_size=2), 6)
    r1 = take(ResumableBatchSampler(40, 8, seed=1, rank=1, world_size=2), 6)
    for s, a, b in zip(single, r0, r1):
        assert sorted(a + b) == sorted(s)
        assert not set(a) & set(b)


def test_sampler_errors():
    with pytest.raises(ValueError, match="divisible"):
        ResumableBatchSampler(40, 7, seed=0, world_size=2)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ResumableBatchSampler(3, 8, seed=0)


def test_seeded_dataset_is_pure_function_of_key():
    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return (i, random.random(), np.random.rand(), torch.rand(()).item())

    ds = SeededDataset(Noise(), seed=3)
    a = ds[12]
    torch.rand(10), np.random.rand(3)
    assert ds[12] == a and a[0] == 2
    assert ds[7][1:] != a[1:]  # same index, other epoch -> other augmentation


def test_schedules():
    assert lr_factor(0, 100, "constant", warmup_steps=4) == pytest.approx(0.25)
    assert lr_factor(50, 100, "step", milestones=(40, 80)) == pytest.approx(0.1)
    assert lr_factor(100, 100, "cosine") == pytest.approx(0.0)
    assert lr_factor(0, 100, "cosine") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        build_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1), {"kind": "bogus"}, 10)


def test_checkpoint_roundtrip_restores_rng(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    ckpt.save_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, scheduler=None, step=5,
                         config={"body_model": {"name": "b"}, "representation": {"name": "prom"}})
    expected = (random.random(), np.random.rand(), torch.rand(()).item())
    payload = ckpt.load_checkpoint(tmp_path / "c.pt")
    ckpt.set_rng_state(payload["rng"])
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == expected
    assert payload["step"] == 5
    ckpt.check_compatible(payload, "b", "prom", "c.pt")
    with pytest.raises(ckpt.CheckpointError, match="representation"):
        ckpt.check_compatible(payload, "b", "6d", "c.pt")
    with pytest.raises(ckpt.CheckpointError, match="body model"):
        ckpt.check_compatible(payload, "other", "prom", "c.pt")


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="cannot read"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")


def test_foreign_pickle_error_names_the_file_and_never_advises_unsafe_loading(tmp_path):
    """torch's weights_only error suggests weights_only=False (running the file's code): not passed on."""
    import fractions
    path = tmp_path / "foreign.pt"
    torch.save({"model": fractions.Fraction(1, 3), "config": {}}, path)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "not a checkpoint of this project" in message and "corrupt" in message
    assert "weights_only" not in message and info.value.__cause__ is None


def test_condition_stats_match_closed_form():
    m = torch.diag(torch.tensor([3.0, 2.0, 1.0]))[None]
    stats = summarize_stats(matrix_stats(m))
    assert stats["condition_median"] == pytest.approx(5.0 / 3.0)
    reflected = torch.diag(torch.tensor([3.0, 2.0, -1.0]))[None]
    stats = summarize_stats(matrix_stats(reflected))
    assert stats["frac_det_negative"] == 1.0
    assert stats["condition_median"] == pytest.approx(5.0 / 1.0)


def test_step_schedule_matches_lambda_lr_and_reads_its_state():
    from hmr.engine.schedule import StepSchedule
    factor = lambda step: lr_factor(step, 10, "cosine", warmup_steps=2)  # noqa: E731
    ours = build_scheduler(torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.5),
                           {"kind": "cosine", "warmup_steps": 2}, 10)
    theirs = torch.optim.lr_scheduler.LambdaLR(torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.5),
                                               factor)
    for _ in range(6):
        assert ours.get_last_lr() == [g["lr"] for g in theirs.optimizer.param_groups]
        ours.step()
        theirs.optimizer.step()
        theirs.step()
    fresh = StepSchedule(torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.5), factor)
    fresh.load_state_dict(theirs.state_dict())     # a checkpoint written before StepSchedule
    assert fresh.get_last_lr() == pytest.approx([0.5 * factor(6)])


def test_csv_log_grows_columns_and_drops_rows_past_a_step(tmp_path):
    import csv
    from hmr.engine.csv_log import append_row, drop_rows_after
    path = tmp_path / "log.csv"
    append_row(path, {"step": 1, "loss": float("nan")})             # a skipped step: no diagnostics
    append_row(path, {"step": 2, "loss": 1.0, "condition_median": 3.0})
    append_row(path, {"step": 3, "loss": 0.5})
    rows = list(csv.DictReader(open(path)))
    assert [r["step"] for r in rows] == ["1", "2", "3"] and rows[0]["condition_median"] == ""
    assert rows[1]["condition_median"] == "3.0"
    assert drop_rows_after(path, 2) == 1
    assert [r["step"] for r in csv.DictReader(open(path))] == ["1", "2"]
