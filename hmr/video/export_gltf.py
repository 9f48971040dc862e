"""One track as an animated, skinned glTF 2.0 binary (``.glb``) that Blender, three.js and any glTF viewer open.

The file holds the track's mesh in its bind pose (the body model's rest shape for the track's betas), a skeleton
of one node per body-model joint (the model's kinematic tree; local translations = rest joint offsets), the
skin (every vertex's nonzero blend weights, up to 4 per ``JOINTS_n``/``WEIGHTS_n`` set and as many sets as the
model needs, so skinning is the model's linear blend skinning exactly; inverse bind matrices = the rest joints'
inverse translations) and one animation: per frame, every joint's local rotation (unit quaternion, XYZW as glTF
and this project use) and the root's translation (rest root joint + the track's translation), keyed at the
frames' timestamps (variable frame rates are kept). Pose-corrective blend shapes of official SMPL/MANO files are
written as morph targets whose weights are animated per frame (SMPL's pose feature ``vec(R_j − I)``), so an
official model's mesh is reproduced too. A parent node turns the OpenCV camera frame (x right, y down, z forward)
into glTF's (y up, z backward): 180 degrees about x.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import pygltflib as gl
import torch

from hmr.rotations import matrix_to_quaternion
from hmr.utils.io import atomic_open

OPENCV_TO_GLTF = np.array([1.0, 0.0, 0.0, 0.0])   # XYZW: 180 degrees about x


class _Buffer:
    """Accumulates binary views and accessors."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf, self.blob = gltf, bytearray()

    def add(self, array: np.ndarray, kind: str, component: int, target: Optional[int] = None,
            minmax: bool = False) -> int:
        data = np.ascontiguousarray(array)
        while len(self.blob) % 4:
            self.blob.append(0)
        view = gl.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=data.nbytes, target=target)
        self.blob.extend(data.tobytes())
        self.gltf.bufferViews.append(view)
        count = data.shape[0]
        accessor = gl.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=count,
                               type=kind)
        if minmax:
            flat = data.reshape(count, -1)
            accessor.min, accessor.max = flat.min(axis=0).tolist(), flat.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def _weight_sets(weights: np.ndarray) -> List[tuple]:
    """(joints uint16 (V, 4), weights float32 (V, 4)) sets holding every nonzero weight of each vertex."""
    order = np.argsort(-weights, axis=1, kind="stable")
    needed = max(1, int((weights > 0).sum(axis=1).max()))
    sets = []
    for start in range(0, needed, 4):
        idx = order[:, start:start + 4]
        w = np.take_along_axis(weights, idx, axis=1)
        if idx.shape[1] < 4:
            pad = 4 - idx.shape[1]
            idx = np.pad(idx, ((0, 0), (0, pad)))
            w = np.pad(w, ((0, 0), (0, pad)))
        idx = np.where(w > 0, idx, 0)
        sets.append((idx.astype(np.uint16), w.astype(np.float32)))
    return sets


def write_track_glb(path: Path, body_model, rotmats: np.ndarray, betas: np.ndarray, transl: np.ndarray,
                    timestamps: np.ndarray, name: str = "track") -> Path:
    """Write one track (``rotmats`` (T, J, 3, 3), ``betas`` (B,), ``transl`` (T, 3), ``timestamps`` (T,) s)."""
    rotmats = np.asarray(rotmats, dtype=np.float64)
    T, J = rotmats.shape[:2]
    if J != body_model.num_joints or len(transl) != T or len(timestamps) != T:
        raise ValueError(f"track arrays disagree: rotmats {rotmats.shape}, transl {np.shape(transl)}, "
                         f"timestamps {np.shape(timestamps)} for a {body_model.num_joints}-joint model")
    with torch.no_grad():
        rest = body_model(full_pose=torch.eye(3, dtype=torch.float32).expand(1, J, 3, 3).clone(),
                          betas=torch.as_tensor(np.asarray(betas), dtype=torch.float32)[None])
    verts = rest.vertices[0].double().numpy()
    joints = rest.joints[0].double().numpy()
    parents = body_model.parents
    gltf = gl.GLTF2(asset=gl.Asset(generator="hmr (tools/demo.py)", version="2.0"))
    gltf.scene, gltf.scenes = 0, [gl.Scene(nodes=[0, 1])]
    buf = _Buffer(gltf)

    faces = body_model.faces.cpu().numpy().astype(np.uint32)
    attributes = gl.Attributes(POSITION=buf.add(verts.astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, True))
    for k, (jidx, w) in enumerate(_weight_sets(body_model.weights.cpu().double().numpy())):
        setattr(attributes, f"JOINTS_{k}", buf.add(jidx, gl.VEC4, gl.UNSIGNED_SHORT, gl.ARRAY_BUFFER))
        setattr(attributes, f"WEIGHTS_{k}", buf.add(w, gl.VEC4, gl.FLOAT, gl.ARRAY_BUFFER))
    primitive = gl.Primitive(attributes=attributes, indices=buf.add(faces.reshape(-1), gl.SCALAR, gl.UNSIGNED_INT,
                                                                      gl.ELEMENT_ARRAY_BUFFER))
    morph_weights = None
    if getattr(body_model, "posedirs", None) is not None:
        # posedirs: (P = 9 (J - 1), V * 3) offsets per pose feature; one morph target each
        dirs = body_model.posedirs.cpu().double().numpy().reshape(-1, verts.shape[0], 3)
        primitive.targets = [{"POSITION": buf.add(d.astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, True)}
                             for d in dirs]
        eye = np.eye(3)
        morph_weights = (rotmats[:, 1:] - eye).reshape(T, -1).astype(np.float32)
    gltf.meshes = [gl.Mesh(name=f"{name}_mesh", primitives=[primitive])]

    # node 0: the skinned mesh; node 1: OpenCV -> glTF frame; nodes 2..: joints
    gltf.nodes.append(gl.Node(name=f"{name}_mesh", mesh=0, skin=0))
    gltf.nodes.append(gl.Node(name=f"{name}_opencv_to_gltf", rotation=OPENCV_TO_GLTF.tolist(), children=[2]))
    names = body_model.joint_set.names
    for j in range(J):
        local = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0.0)
        children = [2 + c for c in range(J) if parents[c] == j]
        gltf.nodes.append(gl.Node(name=str(names[j]), translation=local.tolist(), children=children or None))
    ibm = np.tile(np.eye(4), (J, 1, 1))
    ibm[:, :3, 3] = -joints
    # glTF matrices are column-major: store each 4x4 transposed
    gltf.skins = [gl.Skin(name=f"{name}_skeleton", skeleton=2, joints=list(range(2, 2 + J)),
                          inverseBindMatrices=buf.add(ibm.transpose(0, 2, 1).reshape(J, 16).astype(np.float32),
                                                      gl.MAT4, gl.FLOAT))]

    times = np.asarray(timestamps, dtype=np.float64)
    time_acc = buf.add((times - times[0]).astype(np.float32), gl.SCALAR, gl.FLOAT, minmax=True)
    quats = matrix_to_quaternion(torch.as_tensor(rotmats)).numpy()   # XYZW
    samplers, channels = [], []
    for j in range(J):
        samplers.append(gl.AnimationSampler(input=time_acc, output=buf.add(quats[:, j].astype(np.float32), gl.VEC4,
                                                                           gl.FLOAT), interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1, target=gl.AnimationChannelTarget(
            node=2 + j, path="rotation")))
    root = (joints[0][None] + np.asarray(transl, dtype=np.float64)).astype(np.float32)
    samplers.append(gl.AnimationSampler(input=time_acc, output=buf.add(root, gl.VEC3, gl.FLOAT),
                                        interpolation="LINEAR"))
    channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                        target=gl.AnimationChannelTarget(node=2, path="translation")))
    if morph_weights is not None:
        samplers.append(gl.AnimationSampler(input=time_acc, output=buf.add(morph_weights.reshape(-1), gl.SCALAR,
                                                                           gl.FLOAT), interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=0, path="weights")))
        gltf.meshes[0].weights = [0.0] * morph_weights.shape[1]
    gltf.animations = [gl.Animation(name=f"{name}_motion", samplers=samplers, channels=channels)]
    gltf.buffers = [gl.Buffer(byteLength=len(buf.blob))]
    gltf.set_binary_blob(bytes(buf.blob))
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        handle.write(b"".join(gltf.save_to_bytes()))
    return path


def read_track_glb(path: Path) -> gl.GLTF2:
    """The glTF document of a written ``.glb`` (pygltflib)."""
    return gl.GLTF2().load_binary(str(path))
