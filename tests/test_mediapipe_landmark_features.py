"""hmr.models.mediapipe.MediaPipeLandmarkFeatures (``model.pooling: landmarks``): the landmark networks' own
predictions as regression features, with MediaPipe's rotated second pass.

Needs the converted files from ``bash scripts/setup_env.sh`` (missing: the tests fail and say so).
"""
import cv2
import numpy as np
import pytest
import torch
from skimage import data

from hmr.data.crop import normalize_image
from hmr.models import build_backbone
from hmr.models.mediapipe import MediaPipeLandmarkFeatures, load_network


def astronaut(size):
    image = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    return image, normalize_image(image)[None]


def test_one_pass_features_are_the_networks_outputs_rescaled(encoder_weights):
    """Oracle: the converted network's raw outputs, decoded here by hand from MediaPipe's documented layout."""
    image, x = astronaut(256)
    features = MediaPipeLandmarkFeatures("blazepose_full", align=False).eval()
    with torch.no_grad():
        got = features(x)[0].numpy()
        raw, flag, _, _, world = (t[0].numpy() for t in load_network("pose_landmark_full")(
            torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]))
    lm = raw.reshape(39, 5)
    expected = np.concatenate([lm[:, 0:1] / 256 - 0.5, lm[:, 1:2] / 256 - 0.5, lm[:, 2:3] / 256,
                               1 / (1 + np.exp(-lm[:, 3:]))], axis=1).ravel()
    expected = np.concatenate([expected, 1 / (1 + np.exp(-flag)), world])
    assert got.shape == (313,) == (features.num_features,)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-3)
    nose, left_eye = got[0:2], got[10:12]  # landmark 0 (nose) and 2 (left eye) lie on the face
    assert -0.2 < nose[0] < 0.2 and -0.45 < nose[1] < 0.05 and np.linalg.norm(nose - left_eye) < 0.1


@pytest.mark.parametrize("degrees", [45, -60])
def test_aligned_pass_maps_landmarks_back_into_the_crop(degrees, encoder_weights):
    """The second pass runs on the crop turned upright and its landmarks are rotated back: on the photo turned by
    ``degrees`` they land where the upright photo's are (a wrong back-rotation would be off by ~0.2-0.4 of the
    crop side)."""
    image, x = astronaut(256)
    turn = cv2.getRotationMatrix2D((127.5, 127.5), degrees, 1.0)
    turned = cv2.warpAffine(image, turn, (256, 256), borderMode=cv2.BORDER_REPLICATE)
    features = MediaPipeLandmarkFeatures("blazepose_full").eval()
    with torch.no_grad():
        upright, rotated = features(torch.cat([x, normalize_image(turned)[None]])).numpy()
    head_and_shoulders = slice(0, 13)
    pixels = [f[:195].reshape(39, 5)[head_and_shoulders, :2] * 256 + 127.5 for f in (upright, rotated)]
    inverse = cv2.invertAffineTransform(turn)
    back = pixels[1] @ inverse[:, :2].T + inverse[:, 2]
    assert np.median(np.linalg.norm(back - pixels[0], axis=1)) < 0.04 * 256
    # world landmarks are rotated back like the image ones: the shoulder line points the same way in both
    world = rotated[-117:].reshape(39, 3)
    image_line, world_line = pixels[1][11] - pixels[1][12], world[11, :2] - world[12, :2]
    angle = np.degrees(np.arctan2(*image_line[::-1]) - np.arctan2(*world_line[::-1]))
    assert abs((angle + 180) % 360 - 180) < 10


@pytest.mark.parametrize("name,size,count", [("blazepose_full", 256, 313), ("mediapipe_hand", 224, 128)])
def test_backbone_factory_builds_landmark_pooling(name, size, count, encoder_weights):
    net, dim = build_backbone(name, input_size=(size, size), pretrained=True, pooling="landmarks", freeze=True)
    assert dim == count and net.landmarks and net.frozen
    assert not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        assert net.eval()(torch.zeros(2, 3, size, size)).shape == (2, count)
        cached = net.encoder_maps(torch.zeros(1, 3, size, size))
        net.features_input = True
        assert torch.equal(net(cached), cached)


def test_landmark_pooling_refuses_other_sizes_and_backbones(encoder_weights):
    with pytest.raises(ValueError, match=r"native input size \[256, 256\]"):
        build_backbone("blazepose_full", input_size=(128, 96), pretrained=True, pooling="landmarks")
    with pytest.raises(ValueError, match="needs a MediaPipe landmark network"):
        build_backbone("efficientnet_lite0", input_size=(224, 224), pretrained=True, pooling="landmarks")
    features = MediaPipeLandmarkFeatures("mediapipe_hand")
    with pytest.raises(ValueError, match=r"native size \(224, 224\)"):
        features(torch.zeros(1, 3, 192, 192))


def test_tensors_from_a_split_point_equal_the_full_pass(encoder_weights):
    """Executor oracle: the outputs computed from an intermediate tensor equal those of the whole network."""
    _, x = astronaut(256)
    features = MediaPipeLandmarkFeatures("blazepose_full", align=False)
    net, outputs = features.net, features._tensors
    points = list(features.split_points())
    assert "t300" in points and points.index("t257") < points.index("t300")  # execution order
    with torch.no_grad():
        expected = net.tensors(x, outputs)
        for split in ("t257", "t300", "t320"):
            value = net.tensors(x, [split])[0]
            for got, want in zip(net.tensors_from({split: value}, outputs), expected):
                torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name,size,split", [("blazepose_full", 256, "t300"), ("mediapipe_hand", 224, "t149")])
def test_train_from_splits_the_network_into_frozen_and_trainable_parts(name, size, split, encoder_weights):
    """``train_from``: before training the features equal the plain network's; the cached frozen part + the
    trainable part give the same features; only the top gets gradients, and training it changes the features."""
    _, x = astronaut(size)
    plain = MediaPipeLandmarkFeatures(name)
    tuned = MediaPipeLandmarkFeatures(name, train_from=split)
    with torch.no_grad():
        expected = plain(x)
        torch.testing.assert_close(tuned(x), expected)
        frozen = tuned.frozen_part(x)
        channels, height, width = tuned.split_shape
        assert frozen.shape == (1, channels * height * width + 4)
        torch.testing.assert_close(tuned.trainable_part(frozen), expected)
    tuned(x).square().sum().backward()
    assert all(p.grad is not None for p in tuned.top.parameters())
    assert all(p.grad is None for p in tuned.net.parameters())
    with torch.no_grad():
        for p in tuned.top.parameters():
            p.add_(0.01 * torch.randn_like(p))
        assert not torch.allclose(tuned(x), expected)
        torch.testing.assert_close(plain(x), expected)  # the copy is independent of the pretrained network


def test_image_path_aligns_with_the_trained_top(encoder_weights):
    """After the top trains, forward's alignment rotation comes from the top's landmarks on the unrotated crop
    (composed here by hand from the parts), while the cacheable frozen part keeps the frozen network's."""
    import torch.nn.functional as F

    _, x = astronaut(224)
    tuned = MediaPipeLandmarkFeatures("mediapipe_hand", train_from="t149")
    with torch.no_grad():
        for p in tuned.top.parameters():
            p.add_(0.02 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
        normalise = lambda image: image * tuned.input_scale + tuned.input_shift  # noqa: E731
        identity = torch.eye(2).reshape(1, 4)
        first = tuned.trainable_part(torch.cat([tuned.net.tensors(normalise(x), ["t149"])[0].flatten(1), identity],
                                               dim=1))
        rotation = tuned._alignment(tuned.image_landmarks(first))
        grid = F.affine_grid(torch.cat([rotation, torch.zeros(1, 2, 1)], dim=2), list(x.shape), align_corners=False)
        rotated = F.grid_sample(x, grid, align_corners=False, padding_mode="border")
        split = tuned.net.tensors(normalise(rotated), ["t149"])[0]
        expected = tuned.trainable_part(torch.cat([split.flatten(1), rotation.flatten(1)], dim=1))
        torch.testing.assert_close(tuned(x), expected, rtol=1e-4, atol=1e-4)
        frozen_rotation = tuned.frozen_part(x)[:, -4:].reshape(1, 2, 2)
        assert not torch.allclose(frozen_rotation, rotation, atol=1e-3)  # the cache's alignment stays the net's


def test_backbone_with_a_trainable_landmark_top(encoder_weights):
    net, dim = build_backbone("blazepose_full", input_size=(256, 256), pretrained=True, pooling="landmarks",
                              freeze=True, landmarks_train_from="t300")
    assert dim == 313 and net.frozen and net.trainable_top
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in net.model.top.parameters()}
    _, x = astronaut(256)
    with torch.no_grad():
        direct = net(x)
        cached = net.encoder_maps(x)
        net.features_input = True
        torch.testing.assert_close(net(cached), direct)
    net.features_input = False
    assert net(x).requires_grad  # the image path trains the top too


def test_train_from_refuses_bad_settings(encoder_weights):
    with pytest.raises(ValueError, match=r"cannot train from tensor 't999'.*t300 \(8, 8, 288\)"):
        MediaPipeLandmarkFeatures("blazepose_full", train_from="t999")
    with pytest.raises(ValueError, match="freeze_backbone=true"):
        build_backbone("blazepose_full", input_size=(256, 256), pretrained=True, pooling="landmarks",
                       landmarks_train_from="t300")
    with pytest.raises(ValueError, match="pooling=landmarks"):
        build_backbone("blazepose_full", input_size=(128, 96), pretrained=True, pooling="flatten", freeze=True,
                       landmarks_train_from="t300")


def test_given_alignment_vectors_replace_the_alignment_pass(encoder_weights):
    """Vectors equal to the alignment pass's own (hip centre -> shoulder centre) give the same features; a vector
    turned by 90 degrees gives other features; the count must match the batch."""
    _, x = astronaut(256)
    features = MediaPipeLandmarkFeatures("blazepose_full").eval()
    with torch.no_grad():
        expected = features(x)
        image, _, _ = features._decode(features.net.tensors(x * features.input_scale + features.input_shift,
                                                            features._tensors))
        xy = image[..., :2]
        vector = xy[:, [11, 12]].mean(1) - xy[:, [23, 24]].mean(1)
        with features.aligned_by(vector * 3.0):  # only the direction counts
            given = features(x)
        with features.aligned_by(torch.stack([-vector[:, 1], vector[:, 0]], 1)):
            turned = features(x)
        assert features._given_vectors is None  # the context ends with the block
        np.testing.assert_allclose(given.numpy(), expected.numpy(), atol=1e-5)
        assert (turned - expected).abs().max() > 1e-2
        with pytest.raises(ValueError, match="2 alignment vectors for 1 crops"):
            with features.aligned_by(vector.repeat(2, 1)):
                features(x)
