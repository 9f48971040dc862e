"""Open the exports in Blender itself, headless, and convert a track to FBX with Blender's own exporter.

Blender's Python module (``bpy`` on PyPI, 4.2 for Python 3.11: a 520 MB wheel built against NumPy 1.x) cannot live
in the project's environment (NumPy 2), so it is installed aside by ``scripts/setup_blender.sh`` into
``.cache/blender`` and driven here through a subprocess with that folder on ``PYTHONPATH``. Nothing here is
needed by the rest of the project; without that folder these functions raise :class:`BlenderUnavailable`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BLENDER_PATH = REPO / ".cache" / "blender"

# Runs inside Blender's Python: import the glTF and BVH, report counts and posed positions (Blender is z-up;
# its glTF and BVH importers turn y-up files into it: (x, y, z) -> (x, -z, y)).
_SCRIPT = r"""
import json, sys
import bpy, numpy as np
args = json.loads(sys.argv[-1])
out = {"blender": bpy.app.version_string}
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = int(round(args["fps"]))
bpy.ops.import_scene.gltf(filepath=args["glb"])
arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
mesh = max((o for o in bpy.context.scene.objects if o.type == "MESH"), key=lambda o: len(o.data.vertices))
action = arm.animation_data.action
start, end = (int(round(v)) for v in action.frame_range)
out.update(glb_bones=len(arm.data.bones), glb_frames=end - start + 1, glb_vertices=len(mesh.data.vertices))
bpy.context.scene.frame_set(start + args["frame"])
depsgraph = bpy.context.evaluated_depsgraph_get()
evaluated = mesh.evaluated_get(depsgraph)
world = np.array(mesh.matrix_world)
co = np.array([(world @ np.r_[v.co[:], 1.0])[:3] for v in evaluated.data.vertices])
out["glb_posed_vertices"] = co.tolist()
if args.get("fbx"):
    bpy.ops.export_scene.fbx(filepath=args["fbx"], use_selection=False, bake_anim=True, add_leaf_bones=False)
    out["fbx"] = args["fbx"]
    bpy.ops.wm.read_factory_settings(use_empty=True)   # read it back
    bpy.ops.import_scene.fbx(filepath=args["fbx"])
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    start, end = (int(round(v)) for v in arm.animation_data.action.frame_range)
    out.update(fbx_bones=len(arm.data.bones), fbx_frames=end - start + 1,
               fbx_vertices=max(len(o.data.vertices) for o in bpy.context.scene.objects if o.type == "MESH"))
if args.get("bvh"):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = int(round(args["fps"]))
    bpy.ops.import_anim.bvh(filepath=args["bvh"], update_scene_fps=False, update_scene_duration=True)
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    start, end = (int(round(v)) for v in arm.animation_data.action.frame_range)
    out.update(bvh_bones=len(arm.data.bones), bvh_frames=end - start + 1)
    bpy.context.scene.frame_set(start + args["frame"])
    world = np.array(arm.matrix_world)
    out["bvh_joint_heads"] = {b.name: (world @ np.r_[b.head[:], 1.0])[:3].tolist() for b in arm.pose.bones}
print("BLENDER_JSON" + json.dumps(out), flush=True)
import os
os._exit(0)   # bpy 4.2 as a module can crash in its own clean-up at interpreter exit
"""


class BlenderUnavailable(RuntimeError):
    """Blender's Python module is not installed where the check looks."""


def blender_path() -> Path:
    """Where Blender's Python module is looked for (``HMR_BLENDER_PATH``, else ``.cache/blender``)."""
    return Path(os.environ.get("HMR_BLENDER_PATH", DEFAULT_BLENDER_PATH))


def check_blender() -> None:
    """Raise :class:`BlenderUnavailable` (naming the fix) unless Blender's Python module is installed."""
    path = blender_path()
    if not (path / "bpy").is_dir():
        raise BlenderUnavailable(f"no Blender Python module under {path}: run `bash scripts/setup_blender.sh` "
                                 "(downloads bpy 4.2, ~520 MB) or set HMR_BLENDER_PATH")


def glb_to_fbx(glb: Path, fbx: Path, fps: float) -> Path:
    """Blender's own FBX exporter on the imported ``glb`` (skinned mesh, armature, baked animation)."""
    run_in_blender(glb, 0, fps, fbx=fbx)
    return fbx


def run_in_blender(glb: Path, frame: int, fps: float, bvh: Optional[Path] = None, fbx: Optional[Path] = None,
                   timeout: float = 600) -> Dict[str, Any]:
    """Import ``glb`` (and ``bvh``) into a fresh headless Blender; optionally export the glTF scene as ``fbx``.

    Returns bone, frame and vertex counts, the mesh's vertices posed at keyframe ``frame`` (Blender's world
    frame, z up) and the BVH bones' heads at that frame."""
    check_blender()
    args = {"glb": str(glb), "frame": int(frame), "fps": float(fps), "bvh": str(bvh) if bvh else None,
            "fbx": str(fbx) if fbx else None}
    env = dict(os.environ, PYTHONPATH=str(blender_path()))
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BLENDER_JSON")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"Blender failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return json.loads(line[len("BLENDER_JSON"):])


def y_up_to_blender(points):
    """y-up glTF/BVH coordinates -> Blender's z-up world: (x, y, z) -> (x, -z, y)."""
    import numpy as np
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)
