"""moderngl (OpenGL 3.3 core, EGL standalone context) backend of :mod:`hmr.vis.render`.

One context per process (re-created after a fork); framebuffers are cached per image size. The projection
maps OpenCV pixel coordinates to NDC without a y flip, so row 0 of the read-back framebuffer is the image's
top row (no copy needed); back-face culling is off, so the flipped winding does not matter.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Dict, Tuple

import numpy as np

from hmr.vis.render import Scene

_VERTEX_SHADER = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_material;  // (mesh label, specular strength)
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
flat out vec2 v_material;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    v_material = in_material;
    gl_Position = proj * vec4(in_pos, 1.0);
}
"""

# Same formula as hmr.vis.render.shade.
_FRAGMENT_SHADER = """
#version 330
uniform vec3 light_dir;
uniform vec3 light_color;
uniform float ambient;
uniform float shininess;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
flat in vec2 v_material;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec2 f_depth_label;
void main() {
    vec3 view = normalize(-v_pos);
    vec3 n = length(v_normal) > 1e-12 ? normalize(v_normal) : vec3(0.0);
    if (dot(n, view) < 0.0) n = -n;
    float diffuse = max(dot(n, light_dir), 0.0);
    vec3 h = normalize(light_dir + view);
    float spec = v_material.y * pow(max(dot(n, h), 0.0), shininess);
    vec3 c = v_color * (ambient + diffuse * light_color) + spec * light_color;
    f_color = vec4(clamp(c, 0.0, 1.0), 1.0);
    f_depth_label = vec2(v_pos.z, v_material.x + 1.0);
}
"""

_state: Dict[str, object] = {}


def _preload_triton() -> None:
    """Load triton's native library before Mesa's. Both bundle LLVM; importing triton *after* an llvmpipe EGL
    context exists segfaults the process (seen with torch 2.14 / triton and Mesa 22.3), and torch imports triton
    lazily (e.g. ``import roma`` -> ``torch._dynamo``). Loading it first is safe; without triton this is a no-op."""
    if importlib.util.find_spec("triton") is None:
        return
    try:
        importlib.import_module("triton._C.libtriton")
    except Exception:  # a broken triton install: torch will report it itself if it ever needs it
        pass


def shared_context():
    """The process's moderngl EGL context and shader program (created on first use, re-created after fork)."""
    if _state.get("pid") != os.getpid():
        _preload_triton()
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl")
        _state.clear()
        _state.update(pid=os.getpid(), ctx=ctx, fbos={}, vbo=None, ibo=None, vao=None,
                      prog=ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER))
    return _state["ctx"]


def projection_matrix(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL clip matrix (row-major, for column vectors) for OpenCV intrinsics; pixel centres at integers."""
    P = np.zeros((4, 4), np.float64)
    P[0, :3] = 2.0 / width * K[0] - np.array([0.0, 0.0, 1.0 - 1.0 / width])  # x_ndc = 2(u + 0.5)/W - 1
    P[1, :3] = 2.0 / height * K[1] - np.array([0.0, 0.0, 1.0 - 1.0 / height])
    P[2, 2] = (far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = 1.0
    return P.astype(np.float32)


def _framebuffer(width: int, height: int):
    fbos = _state["fbos"]
    key = (width, height)
    if key not in fbos:
        ctx = _state["ctx"]
        fbos[key] = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer((width, height), 4), ctx.renderbuffer((width, height), 2, dtype="f4")],
            depth_attachment=ctx.depth_renderbuffer((width, height)),
        )
    return fbos[key]


def _upload(data: np.ndarray, indices: np.ndarray) -> None:
    """Write vertex/index data into reusable buffers (grown when too small); rebuild the VAO if needed."""
    ctx, prog = _state["ctx"], _state["prog"]
    rebuilt = False
    for name, arr in (("vbo", data), ("ibo", indices)):
        buf = _state[name]
        if buf is None or buf.size < arr.nbytes:
            if buf is not None:
                buf.release()
            _state[name] = ctx.buffer(reserve=max(arr.nbytes, 1) * 2)
            rebuilt = True
        _state[name].write(arr.tobytes())
    if rebuilt or _state["vao"] is None:
        if _state["vao"] is not None:
            _state["vao"].release()
        _state["vao"] = ctx.vertex_array(
            prog, [(_state["vbo"], "3f 3f 3f 2f", "in_pos", "in_normal", "in_color", "in_material")],
            index_buffer=_state["ibo"], index_element_size=4)


def rasterize(scene: Scene, width: int, height: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``scene`` -> (color uint8 HxWx3, depth float32 HxW, labels int16 HxW)."""
    import moderngl

    ctx = shared_context()
    z = scene.positions[:, 2]
    near = float(max(z.min() * 0.5, 1e-3)) if len(z) else 1e-3
    far = float(max(z.max() * 2.0, near * 10))
    data = np.concatenate([scene.positions, scene.normals, scene.colors, scene.labels[:, None],
                           scene.specular[:, None]], axis=1).astype(np.float32)
    _upload(np.ascontiguousarray(data), np.ascontiguousarray(scene.faces, dtype=np.int32))
    prog = _state["prog"]
    prog["proj"].write(projection_matrix(scene.K.astype(np.float64), width, height, near, far).T.tobytes())
    prog["light_dir"].value = tuple(float(x) for x in scene.light.unit_direction())
    prog["light_color"].value = tuple(float(x) for x in scene.light.color)
    prog["ambient"].value = float(scene.light.ambient)
    prog["shininess"].value = float(scene.light.shininess)

    fbo = _framebuffer(width, height)
    fbo.use()
    fbo.viewport = (0, 0, width, height)
    fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
    ctx.enable(moderngl.DEPTH_TEST)
    ctx.disable(moderngl.CULL_FACE)
    _state["vao"].render(moderngl.TRIANGLES, vertices=scene.faces.size)

    color = np.frombuffer(fbo.read(components=4, attachment=0), np.uint8).reshape(height, width, 4)[..., :3]
    dl = np.frombuffer(fbo.read(components=2, attachment=1, dtype="f4"), np.float32).reshape(height, width, 2)
    labels = (np.rint(dl[..., 1]) - 1).astype(np.int16)
    depth = np.where(labels >= 0, dl[..., 0], 0.0).astype(np.float32)
    return color.copy(), depth, labels
