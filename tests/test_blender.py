"""The track exports opened in Blender itself (headless, bpy 4.2 installed aside by scripts/setup_blender.sh):
bone, frame and vertex counts, one posed frame of the .glb mesh and of the .bvh skeleton, and Blender's FBX
export read back. Slow and needs that install: run with `pytest -m slow tests/test_blender.py`."""
import numpy as np
import pytest

from hmr.video.blender_check import run_in_blender, y_up_to_blender
from hmr.video.export_gltf import write_track_glb
from hmr.video.export_motion import OPENCV_TO_Y_UP, write_track_bvh
from test_video_export import _model_output, _track

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model_name", ["open-smpl", "open-mano-right"])
def test_blender_opens_the_exports(model_name, tmp_path):
    from hmr import body
    model = body.load(model_name)
    rotmats, betas, transl, _ = _track(model, frames=6)
    times = np.arange(6) / 30.0
    glb = write_track_glb(tmp_path / "t.glb", model, rotmats, betas, transl, times)
    bvh = write_track_bvh(tmp_path / "t.bvh", model, rotmats, betas, transl, times)
    result = run_in_blender(glb, 3, 30, bvh=bvh, fbx=tmp_path / "t.fbx")
    J = model.num_joints
    assert (result["glb_bones"], result["glb_frames"], result["glb_vertices"]) == (J, 6, model.num_vertices)
    assert (result["bvh_bones"], result["bvh_frames"]) == (J, 6)
    assert (result["fbx_bones"], result["fbx_frames"], result["fbx_vertices"]) == (J, 6, model.num_vertices)
    verts, joints = _model_output(model, rotmats, betas, transl)
    expected = y_up_to_blender(verts[3] @ OPENCV_TO_Y_UP.T)
    assert 1e3 * np.abs(np.array(result["glb_posed_vertices"]) - expected).max() < 1.0
    heads = np.array([result["bvh_joint_heads"][n] for n in model.joint_set.names])
    assert 1e3 * np.abs(heads - y_up_to_blender(joints[3] @ OPENCV_TO_Y_UP.T)).max() < 1.0
