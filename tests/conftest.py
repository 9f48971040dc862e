"""Shared pytest setup: deterministic seeds, one torch thread (the CI machine has two cores)."""
import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def encoder_weights():
    """Fails (never skips) when the converted MediaPipe landmark networks are missing or wrong."""
    from hmr.models.mediapipe import ENCODERS, check_all

    problems = {n: p for n, p in check_all(names=[e.network for e in ENCODERS.values()]).items() if p is not None}
    if problems:
        pytest.fail("converted MediaPipe networks missing or wrong (run `bash scripts/setup_env.sh` first):\n"
                    + "\n".join(problems.values()))


@pytest.fixture(scope="session")
def smpl():
    """The shipped open body model (a missing file is a failure, not a skip: it ships with the repository)."""
    from hmr import body
    return body.load("open-smpl")


@pytest.fixture(scope="session")
def mano_right():
    from hmr import body
    return body.load("open-mano-right")


@pytest.fixture(scope="session")
def mano_left():
    from hmr import body
    return body.load("open-mano-left")


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory):
    """Tiny rendered body and hand sets (SPIN npz / FreiHAND layout), shared by the end-to-end tests."""
    from hmr.data.synthetic import SetSpec, generate_set

    root = tmp_path_factory.mktemp("synthetic")
    body = SetSpec.from_config("body", {"name": "body_quick", "splits": {"train": 24, "val": 4, "test": 8},
                                        "image_sizes": [[96, 96], [96, 128]], "shard_size": 12}, seed=1)
    hand = SetSpec.from_config("hand", {"name": "hand_quick", "splits": {"train": 24, "val": 4, "test": 8},
                                        "image_sizes": [[96, 96]], "shard_size": 12}, seed=1)
    for spec in (body, hand):
        generate_set(spec, root=str(root), workers=1, progress=False, contact_sheet=False)
    return root


TINY_TRAIN_OVERRIDES = [
    "model.backbone=resnet_tiny", "model.pretrained=false", "model.input_size=[64, 48]", "data.crop_size=[64, 48]",
    "train.batch_size=4", "train.num_workers=0", "train.tensorboard=false", "train.log_every=1",
    "eval.batch_size=8", "eval.num_workers=0",
    # the CPU presets' frozen landmark read-out needs MediaPipe's native crop sizes; tiny runs train end to end
    "model.freeze_backbone=false", "model.pooling=flatten", "train.cache_features=false", "train.cache_samples=0",
    "model.landmarks.train_from=null", "loss.landmarks=0.0",
    "representation.anneal.kind=none",
]


def poison_joint_losses(trainer) -> None:
    """Make every step of ``trainer`` produce a NaN 3D-joint loss (for the non-finite-step paths)."""
    real = trainer.compute_losses

    def poisoned(batch):
        terms, pred = real(batch)
        terms["joints3d"] = terms["joints3d"] * float("nan")
        return terms, pred

    trainer.compute_losses = poisoned
