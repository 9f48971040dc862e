"""Unit tests of hmr.demo's predictor: mirrored hands, batching, crops like the dataset, body parameters,
checkpoint mismatches, the mask-IoU oracle."""
import numpy as np
import pytest
import torch

from test_demo_helpers import make_checkpoint, textured_image

MIRROR = np.diag([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def hand_model(tmp_path_factory):
    from hmr.demo import DemoModel

    path = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "hand.pt", "hand")
    model = DemoModel(path)
    with torch.no_grad():   # a bent, non-orthogonal start so mirroring is tested on a non-trivial hand
        model.model.init_pose_params.add_(0.3 * torch.randn_like(model.model.init_pose_params))
    return model


def test_left_hand_is_the_mirrored_right_hand(hand_model):
    import roma

    import hmr.body
    from hmr.data.crop import inplane_transform, warp_image
    from hmr.demo.predictor import CropInput

    image = textured_image(96, 80, seed=3)
    h, w = image.shape[:2]
    flip, _ = inplane_transform(0.0, True, (w / 2, h / 2))
    mirrored_image = warp_image(image, flip, (h, w))          # x -> w - x, the training flip
    center, scale = np.array([36.0, 50.0]), 0.2     # the crop stays inside the image (no border pixels)
    right, left = hand_model.predict([CropInput(image, center, scale, 150.0, mirror=False),
                                      CropInput(mirrored_image, np.array([w - 36.0, 50.0]), scale, 150.0,
                                                mirror=True)])
    assert hand_model.side == "right" and left.body_model == "open-mano-left" and left.mirrored
    np.testing.assert_allclose(left.vertices, right.vertices @ MIRROR, atol=1e-4)
    np.testing.assert_allclose(left.rotmats, MIRROR @ right.rotmats @ MIRROR, atol=1e-5)
    np.testing.assert_allclose(left.keypoints_2d[:, 0], w - right.keypoints_2d[:, 0], atol=1e-2)
    np.testing.assert_array_equal(left.faces, right.faces[:, ::-1])
    oracle = roma.rotmat_to_rotvec(torch.as_tensor(left.rotmats, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(left.axis_angle, oracle, atol=1e-4)
    # the left model with the exported parameters rebuilds the exported mesh
    out = hmr.body.load("open-mano-left")(full_pose=torch.as_tensor(left.rotmats)[None],
                                          betas=torch.as_tensor(left.betas)[None])
    np.testing.assert_allclose(out.vertices[0].numpy() + left.transl, left.vertices, atol=1e-4)


def test_batching_does_not_change_predictions(hand_model):
    from hmr.demo.predictor import CropInput

    items = [CropInput(textured_image(64, 64, seed=s), np.array([32.0, 30.0]), 0.25 + 0.02 * s, 100.0)
             for s in range(3)]
    one = hand_model.predict(items, batch_size=1)
    three = hand_model.predict(items, batch_size=3)
    for a, b in zip(one, three):
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)
    with pytest.raises(ValueError, match="batch size"):
        hand_model.predict(items, batch_size=0)


def test_demo_crops_exactly_like_the_dataset(tiny_synthetic_root, tmp_path):
    from hmr.data.registry import build_dataset
    from hmr.demo import DemoModel
    from hmr.demo.predictor import CropInput
    from hmr.data.image import read_image

    model = DemoModel(make_checkpoint(tmp_path / "body.pt", "body", root=str(tiny_synthetic_root)))
    data_cfg = dict(model.config["data"].to_dict() if hasattr(model.config["data"], "to_dict")
                    else model.config["data"])
    data_cfg["root"] = str(tiny_synthetic_root)
    dataset = build_dataset("synth_body", "test", data_cfg, augment=False)
    item, ann = dataset[1], dataset.annotation(1)
    image = read_image(ann.image_path)
    batch = model.make_batch([CropInput(image, ann.center, ann.scale, float(item["focal"]))])
    torch.testing.assert_close(batch["img"][0], item["img"])
    torch.testing.assert_close(batch["bbox_info"][0], item["bbox_info"])
    torch.testing.assert_close(batch["img_size"][0], item["img_size"])


def test_body_parameters_rebuild_the_mesh(tmp_path):
    import hmr.body
    from hmr.demo import DemoModel
    from hmr.demo.export import parameter_arrays
    from hmr.demo.predictor import CropInput

    model = DemoModel(make_checkpoint(tmp_path / "body.pt", "body"))
    person = model.predict([CropInput(textured_image(96, 72), np.array([36.0, 48.0]), 0.4, 120.0)])[0]
    params = parameter_arrays(person, "body")
    assert params["global_orient"].shape == (1, 3) and params["body_pose"].shape == (1, 69)
    assert params["body_pose_rotmat"].shape == (1, 23, 3, 3) and params["transl"].shape == (1, 3)
    out = hmr.body.load("open-smpl")(global_orient=torch.as_tensor(params["global_orient"]),
                                     body_pose=torch.as_tensor(params["body_pose"]),
                                     betas=torch.as_tensor(params["betas"]),
                                     transl=torch.as_tensor(params["transl"]))
    np.testing.assert_allclose(out.vertices[0].numpy(), person.vertices, atol=2e-4)
    # full-frame camera: the pelvis projects inside the box region and the mesh lies in front of the camera
    assert person.vertices[:, 2].min() > 0


def test_checkpoint_mismatch_is_a_clear_error(tmp_path):
    from hmr.demo import DemoModel, DemoOptions
    from hmr.demo.runner import DemoError, DemoRunner
    from hmr.engine.checkpoint import CheckpointError

    path = make_checkpoint(tmp_path / "body.pt", "body")
    with pytest.raises(CheckpointError, match="trained for body model 'open-smpl'"):
        DemoModel(path, body_model="open-mano-right")
    with pytest.raises(CheckpointError, match="representation 'prom'"):
        DemoModel(path, representation="sixd")
    model = DemoModel(path, body_model="open-smpl", representation="prom")
    with pytest.raises(DemoError, match="needs a hand checkpoint"):
        DemoRunner(model, DemoOptions(out=tmp_path / "o", hand="left"))
    with pytest.raises(DemoError, match="batch-size"):
        DemoRunner(model, DemoOptions(out=tmp_path / "o", batch_size=0))


def test_mask_iou_oracle_is_one(tiny_synthetic_root, tmp_path):
    """The ground truth pushed through the prediction path (stub model) overlaps itself perfectly."""
    import hmr.body
    from hmr.demo.mask_iou import synthetic_mask_iou
    from hmr.demo.predictor import PersonPrediction
    from hmr.vis.overlay import intrinsics

    npz = tiny_synthetic_root / "body_quick" / "test.npz"
    data = np.load(npz)
    body = hmr.body.load("open-smpl")

    class OracleModel:
        kind, name, checkpoint, representation_name = "body", "open-smpl", "oracle", "gt"
        calls = 0

        def predict(self, crops, batch_size):
            out = []
            for crop in crops:
                i = OracleModel.calls
                OracleModel.calls += 1
                v = body(full_pose=torch.as_tensor(data["rotmat"][i:i + 1], dtype=torch.float32),
                         betas=torch.as_tensor(data["shape"][i:i + 1], dtype=torch.float32)).vertices[0].numpy()
                h, w = crop.image.shape[:2]
                out.append(PersonPrediction(v + data["transl"][i].astype(np.float32), body.faces.numpy(),
                                            None, None, None, None, intrinsics(crop.focal, h, w), None,
                                            "open-smpl", False))
            return out

    result = synthetic_mask_iou(OracleModel(), npz, max_samples=3, batch_size=2)
    assert result["count"] == 3 and result["mean_iou"] > 0.99
    with pytest.raises(ValueError, match="lacks"):
        bad = tmp_path / "bad.npz"
        np.savez(bad, imgname=np.array(["x"]))
        synthetic_mask_iou(OracleModel(), bad)


def test_keypoint_alignment_vector_replaces_the_alignment_pass(tmp_path, encoder_weights):
    """A landmark-feature checkpoint (the hand preset) given the vector its own alignment pass finds predicts the
    same mesh, mirrored crops included (the vector is given in the unmirrored image); another vector changes it."""
    import dataclasses

    from hmr.config import load_config
    from hmr.demo import DemoModel
    from hmr.demo.predictor import CropInput
    from hmr.engine.builders import build_body_model, build_model, build_representation
    from hmr.engine.checkpoint import save_checkpoint

    cfg = load_config("configs/hand_cpu.yaml", ["data.root=/nonexistent"])
    save_checkpoint(tmp_path / "hand.pt", model=build_model(cfg, build_body_model(cfg), build_representation(cfg)),
                    optimizer=None, scheduler=None, step=0, config=cfg.to_dict())
    demo = DemoModel(tmp_path / "hand.pt")
    features = demo.model.backbone.model
    image = textured_image(160, 200, seed=3)
    for mirror in (False, True):
        item = CropInput(image, np.array([110.0, 70.0]), 0.6, 300.0, mirror)
        with torch.no_grad():
            x = demo.make_batch([item])["img"] * features.input_scale + features.input_shift
            landmarks = features._decode(features._first_pass(x, True))[0][0, :, :2].numpy()
        crop_vector = (landmarks[list(features.outputs.align_end)].mean(0)
                       - landmarks[list(features.outputs.align_start)].mean(0))
        image_vector = crop_vector * [-1.0, 1.0] if mirror else crop_vector
        plain = demo.predict([item])[0].vertices
        given = demo.predict([dataclasses.replace(item, align_vector=image_vector * 40)])[0].vertices
        turned = demo.predict([dataclasses.replace(item, align_vector=image_vector[::-1] * [-1, 1])])[0].vertices
        same, other = np.abs(given - plain).max(), np.abs(turned - plain).max()
        assert same < 1e-5 and other > 100 * max(same, 1e-7), (same, other)  # the untrained head moves little
