"""Sharded streaming data: the converter, item equality with the map-style readers, disjoint shards across
2-process gloo ranks, exact resume of the stream and of training, mixing ratios, error paths."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from conftest import TINY_TRAIN_OVERRIDES
from hmr.config import load_config
from hmr.data import build_dataset
from hmr.data.base import DatasetLayoutError
from hmr.data.registry import dataset_options
from hmr.data.shards import ShardStream, read_index, read_shard, write_shards
from hmr.data.shards.format import decode_annotation, encode_annotation

REPO = Path(__file__).resolve().parents[1]
BODY_CFG = {"data": {"sets": {"synth_body": {"npz": "body_quick/{split}.npz", "images": "body_quick"}}}}
HAND_CFG = {"data": {"sets": {"synth_hand": {"root": "hand_quick"}}}}


def _cfg(root, base, crop=(64, 48)):
    return {"data": {**base["data"], "root": str(root), "crop_size": list(crop)}}


@pytest.fixture(scope="module")
def body_shards(tiny_synthetic_root, tmp_path_factory):
    """The tiny body training split (24 samples) as 8 shards of 3."""
    out = tmp_path_factory.mktemp("shards") / "synth_body" / "train"
    dataset = build_dataset("synth_body", "train", _cfg(tiny_synthetic_root, BODY_CFG), augment=False)
    write_shards(dataset, out, "train", shard_size=3)
    return out


def _stream(folder, root, rank=0, world=1, batch=3, start=0, augment=True, seed=0):
    options = dataset_options({}, "body", "train", _cfg(root, BODY_CFG), augment=augment)
    return ShardStream([folder], [1.0], [options], seed=seed, rank=rank, world_size=world, batch_size=batch,
                       start_step=start)


def test_annotation_record_round_trips_exactly(tiny_synthetic_root):
    for name, base in (("synth_body", BODY_CFG), ("synth_hand", HAND_CFG)):
        dataset = build_dataset(name, "test", _cfg(tiny_synthetic_root, base), augment=False)
        ann = dataset.annotation(3)
        back = decode_annotation(encode_annotation(ann), "x")
        for key in ("center", "keypoints_2d", "joints_3d", "pose", "betas", "scale", "gender", "focal", "img_size"):
            assert np.array_equal(np.asarray(getattr(ann, key)), np.asarray(getattr(back, key))), (name, key)
        assert (ann.vertices is None) == (back.vertices is None)
        if ann.vertices is not None:
            assert np.array_equal(ann.vertices, back.vertices)
        assert set(ann.extra_2d) == set(back.extra_2d)
    with pytest.raises(ValueError, match="unreadable annotation record"):
        decode_annotation(b"{not json", "shard-000000.tar:000000001")


@pytest.mark.parametrize("name,base,kind", [("synth_body", BODY_CFG, "body"), ("synth_hand", HAND_CFG, "hand")])
def test_streamed_items_equal_map_style_items(tiny_synthetic_root, tmp_path, name, base, kind):
    cfg = _cfg(tiny_synthetic_root, base)
    dataset = build_dataset(name, "test", cfg, augment=False)
    index = write_shards(dataset, tmp_path, "test", shard_size=3)
    assert index.num_samples == len(dataset) == 8 and len(index.shards) == 3 and index.contract["kind"] == kind
    stream = ShardStream([tmp_path], [1.0], [dataset_options({}, kind, "test", cfg, augment=False)])
    items = iter(stream)
    seen = []
    for _ in range(len(dataset)):
        item = next(items)
        ref = dataset[int(item["index"])]
        for key, value in ref.items():
            assert torch.equal(value, item[key]), key
        seen.append(int(item["index"]))
    assert sorted(seen) == list(range(len(dataset)))


def _rank_epoch(rank, world, folder, root, init_file, out_file):
    """One rank: a 2-worker loader over the stream for one epoch; indices gathered across ranks."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        loader = DataLoader(_stream(folder, root, rank, world, batch=3), batch_size=3, num_workers=2)
        batches = []
        for k, batch in enumerate(loader):
            batches.append(batch["index"].tolist())
            if k + 1 == 4:   # 24 samples / (2 ranks x 3 per rank) = 4 steps per epoch
                break
        gathered = [None] * world
        dist.all_gather_object(gathered, batches)
        if rank == 0:
            Path(out_file).write_text(json.dumps(gathered))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_read_every_sample_once_per_epoch(body_shards, tiny_synthetic_root, tmp_path):
    out = tmp_path / "gathered.json"
    mp.spawn(_rank_epoch, args=(2, body_shards, tiny_synthetic_root, tmp_path / "init", out), nprocs=2, join=True)
    per_rank = json.loads(out.read_text())
    flat = [i for batches in per_rank for batch in batches for i in batch]
    assert sorted(flat) == list(range(24)), per_rank
    assert not set(sum(per_rank[0], [])) & set(sum(per_rank[1], []))


def _take(loader, n):
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            return out


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_resumed_at_step_k_continues_the_uninterrupted_stream(body_shards, tiny_synthetic_root, workers):
    straight = _take(DataLoader(_stream(body_shards, tiny_synthetic_root, rank=1, world=2), batch_size=3,
                                num_workers=workers), 11)
    resumed = _take(DataLoader(_stream(body_shards, tiny_synthetic_root, rank=1, world=2, start=5), batch_size=3,
                               num_workers=workers), 6)
    for a, b in zip(straight[5:], resumed):
        assert a["index"].tolist() == b["index"].tolist()
        assert torch.equal(a["img"], b["img"]) and torch.equal(a["pose"], b["pose"])  # augmentation included


def test_mixing_ratios_hold(body_shards, tiny_synthetic_root, tmp_path):
    cfg = _cfg(tiny_synthetic_root, BODY_CFG)
    write_shards(build_dataset("synth_body", "test", cfg, augment=False), tmp_path, "test", shard_size=2)
    options = dataset_options({}, "body", "train", cfg, augment=False)
    stream = ShardStream([body_shards, tmp_path], [0.75, 0.25], [options, options], seed=3)
    items = iter(stream)
    sources = [int(next(items)["source"]) for _ in range(400)]
    assert abs(sources.count(0) / 400 - 0.75) < 0.07


def test_shard_errors(body_shards, tiny_synthetic_root, tmp_path):
    with pytest.raises(DatasetLayoutError, match="make_shards.py"):
        read_index(tmp_path)
    stream = _stream(body_shards, tiny_synthetic_root, rank=0, world=5)   # 5 readers, 8 shards: fine
    next(iter(stream))
    with pytest.raises(ValueError, match="fewer than the 9 readers"):
        next(iter(_stream(body_shards, tiny_synthetic_root, rank=0, world=9)))
    with pytest.raises(ValueError, match="other parameters"):   # an unfinished conversion with another size
        write_shards(build_dataset("synth_body", "train", _cfg(tiny_synthetic_root, BODY_CFG), augment=False),
                     body_shards, "train", shard_size=5)


def test_converter_cli_skips_unreadable_images_and_resumes(tiny_synthetic_root, tmp_path):
    import shutil
    root = tmp_path / "root"
    shutil.copytree(tiny_synthetic_root / "body_quick", root / "body_quick")
    (root / "body_quick/images/val/00000001.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "shards/synth_body/val"
    cmd = [sys.executable, "tools/make_shards.py", "--config", "configs/body_cpu.yaml", "--dataset", "synth_body",
           "--split", "val", "--out", str(out), "--shard-size", "2", f"data.root={root}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "3 samples in 2 shards, 1 unreadable image(s) left out" in proc.stdout
    index = read_index(out)
    assert index.skipped_unreadable == 1 and sum(len(read_shard(out / s["file"])) for s in index.shards) == 3
    (out / "index.json").unlink()   # a conversion killed before its index: started again, it keeps the shards
    before = (out / "shard-000000.tar").stat().st_mtime_ns
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and (out / "shard-000000.tar").stat().st_mtime_ns == before
    proc = subprocess.run([*cmd[:5], "nope", *cmd[6:]], cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "unknown dataset 'nope'" in proc.stderr


def test_training_from_shards_resumes_exactly(body_shards, tiny_synthetic_root, tmp_path):
    from hmr.engine.trainer import Trainer
    args = [f"data.root={tiny_synthetic_root}", *TINY_TRAIN_OVERRIDES, f"data.shards={body_shards.parents[1]}",
            "train.batch_size=3", "train.num_workers=2", "train.final_eval=false", "train.deterministic=true",
            "train.checkpoint_every=3"]
    straight = Trainer(load_config(REPO / "configs/body_cpu.yaml", [*args, "train.steps=7"]), tmp_path / "a")
    straight.run()
    first = Trainer(load_config(REPO / "configs/body_cpu.yaml", [*args, "train.steps=3"]), tmp_path / "b")
    first.run()
    resumed = Trainer(load_config(REPO / "configs/body_cpu.yaml", [*args, "train.steps=7"]), tmp_path / "b",
                      resume=True)
    assert resumed.step == 3
    resumed.run()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_compare_shards_tool_and_cache_conflict(tiny_synthetic_root, tmp_path):
    args = [f"data.root={tiny_synthetic_root}", *TINY_TRAIN_OVERRIDES, "train.batch_size=3"]
    proc = subprocess.run([sys.executable, "tools/compare_shards.py", "--config", "configs/body_cpu.yaml",
                           "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "out"), "--seeds", "0",
                           "--steps", "3", "--shard-size", "4", "--", *args], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out/shard_curves.json").read_text())
    assert set(report["curves"]) == {"map", "shards"} and len(report["curves"]["shards"]["0"]["loss"]) == 3
    assert (tmp_path / "out/shard_curves.png").stat().st_size > 0 and "seed noise" in proc.stdout
    from hmr.engine.trainer import Trainer
    cfg = load_config(REPO / "configs/body_cpu.yaml", [*args, f"data.shards={tmp_path / 'shards'}",
                                                       "train.cache_features=true"])
    with pytest.raises(ValueError, match="cannot be combined"):
        Trainer(cfg, tmp_path / "x")
