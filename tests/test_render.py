"""Renderer: analytic oracles (projection, depth, Lambert shading), backend agreement, error paths."""
import logging

import numpy as np
import pytest
import trimesh

from hmr.vis import render as render_mod
from hmr.vis.render import Light, Mesh, Renderer


def _gl_available() -> bool:
    try:
        Renderer(8, 8, "moderngl")
        return True
    except RuntimeError:
        return False


BACKENDS = ["torch"] + (["moderngl"] if _gl_available() else [])
K = np.array([[300.0, 0.0, 64.0], [0.0, 280.0, 48.0], [0.0, 0.0, 1.0]], np.float32)
W, H = 128, 96


def _ellipsoid(center, radii, subdivisions=4):
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    return np.asarray(m.vertices, np.float32) * np.float32(radii) + np.float32(center), np.asarray(m.faces)


def _quad(x0, x1, y0, y1, z):
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float32)
    return v, np.array([[0, 1, 2], [0, 2, 3]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_quad_covers_exactly_the_projected_pixel_centres(backend):
    x0, x1, y0, y1, z = -0.1, 0.07, -0.05, 0.06, 2.0
    v, f = _quad(x0, x1, y0, y1, z)
    res = Renderer(W, H, backend).render(v, f, K)
    u = np.arange(W)
    vv = np.arange(H)
    inside_u = (u > K[0, 0] * x0 / z + K[0, 2] + 1e-3) & (u < K[0, 0] * x1 / z + K[0, 2] - 1e-3)
    inside_v = (vv > K[1, 1] * y0 / z + K[1, 2] + 1e-3) & (vv < K[1, 1] * y1 / z + K[1, 2] - 1e-3)
    expected = inside_v[:, None] & inside_u[None, :]
    # Pixel centres strictly inside the projected square are covered; none farther than one pixel outside.
    assert res.mask[expected].all()
    grown = np.zeros_like(expected)
    ys, xs = np.nonzero(expected)
    grown[max(ys.min() - 1, 0):ys.max() + 2, max(xs.min() - 1, 0):xs.max() + 2] = True
    assert not res.mask[~grown].any()
    np.testing.assert_allclose(res.depth[expected], z, rtol=1e-5)
    assert (res.depth[~res.mask] == 0).all() and (res.labels[~res.mask] == -1).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_lambert_shading_of_a_plane_matches_the_formula(backend):
    v, f = _quad(-1, 1, -1, 1, 3.0)
    albedo = np.array([0.8, 0.5, 0.3], np.float32)
    light = Light(direction=(0.0, 0.0, -1.0), ambient=0.2, color=(0.6, 0.6, 0.6))
    res = Renderer(W, H, backend).render_meshes([Mesh(v, f, albedo, specular=0.0)], K, light=light)
    expected = np.round(np.clip(albedo * (0.2 + 0.6), 0, 1) * 255)
    np.testing.assert_allclose(res.color[H // 2, W // 2], expected, atol=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sphere_depth_matches_ray_intersection(backend):
    c, r = np.array([0.02, -0.01, 2.5]), 0.3
    v, f = _ellipsoid(c, (r, r, r), subdivisions=5)
    res = Renderer(W, H, backend).render(v, f, K)
    ys, xs = np.nonzero(res.mask)
    rays = np.linalg.solve(K.astype(np.float64), np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)).T
    # Ray p = t·d hits |p - c| = r at t = (d·c - sqrt((d·c)^2 - |d|^2(|c|^2 - r^2))) / |d|^2; depth = t·d_z = t.
    dc = rays @ c
    dd = (rays ** 2).sum(1)
    disc = dc ** 2 - dd * (c @ c - r * r)
    interior = disc > 0.05 * dd * r * r  # away from the silhouette, where tessellation dominates
    t = (dc[interior] - np.sqrt(disc[interior])) / dd[interior]
    err = np.abs(res.depth[ys[interior], xs[interior]] - t)
    assert np.median(err) < 1e-3 and err.max() < 5e-3


@pytest.mark.skipif("moderngl" not in BACKENDS, reason="no EGL context on this machine")
def test_backends_agree_on_two_overlapping_meshes():
    body = _ellipsoid((0.03, 0.0, 2.5), (0.25, 0.6, 0.15), subdivisions=5)
    occluder = _ellipsoid((-0.1, 0.1, 2.0), (0.1, 0.1, 0.1), subdivisions=3)
    meshes = [Mesh(*body, (0.9, 0.6, 0.5)), Mesh(*occluder, (0.2, 0.4, 0.9), specular=0.5)]
    light = Light(direction=(0.4, -0.6, -1.0), ambient=0.3)
    a = Renderer(W, H, "moderngl").render_meshes(meshes, K, light=light)
    b = Renderer(W, H, "torch").render_meshes(meshes, K, light=light)
    iou = (a.mask & b.mask).sum() / (a.mask | b.mask).sum()
    assert iou >= 0.99
    both = a.mask & b.mask
    assert (a.labels[both] == b.labels[both]).mean() > 0.99
    assert np.median(np.abs(a.depth[both] - b.depth[both])) < 1e-5
    assert np.abs(a.color[both].astype(int) - b.color[both].astype(int)).mean() < 1.0
    assert set(np.unique(a.labels)) == {-1, 0, 1}


@pytest.mark.parametrize("backend", BACKENDS)
def test_background_composited_outside_the_mask(backend):
    v, f = _ellipsoid((0.0, 0.0, 2.0), (0.2, 0.2, 0.2), subdivisions=2)
    bg = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    res = Renderer(W, H, backend).render(v, f, K, background=bg)
    assert res.mask.any() and (~res.mask).any()
    assert (res.color[~res.mask] == bg[~res.mask]).all()


def test_side_and_top_views_turn_the_mesh():
    v, f = _ellipsoid((0.0, 0.0, 3.0), (0.5, 0.05, 0.05), subdivisions=3)  # long along x
    r = Renderer(W, H, "torch")
    front, side, top = r.render(v, f, K), r.side_view(v, f, K), r.top_view(v, f, K)
    width = lambda m: np.ptp(np.nonzero(m.mask)[1])  # noqa: E731
    height = lambda m: np.ptp(np.nonzero(m.mask)[0])  # noqa: E731
    assert width(side) < 0.3 * width(front)
    # turning about x keeps a rod along x as it is
    assert abs(width(top) - width(front)) <= 2 and abs(height(top) - height(front)) <= 2
    w2, f2 = _ellipsoid((0.0, 0.0, 3.0), (0.05, 0.5, 0.05), subdivisions=3)  # long along y
    assert height(r.top_view(w2, f2, K)) < 0.3 * height(r.render(w2, f2, K))


def test_render_batch_matches_single_renders():
    v, f = _ellipsoid((0.0, 0.0, 2.0), (0.2, 0.3, 0.2), subdivisions=2)
    batch = np.stack([v, v + np.float32([0.1, 0.0, 0.5])])
    r = Renderer(W, H, "torch")
    out = r.render_batch(batch, f, K)
    assert len(out) == 2
    assert (out[1].mask == r.render(batch[1], f, K).mask).all()


def test_auto_falls_back_to_torch_when_egl_fails(monkeypatch, caplog):
    from hmr.vis import render_gl

    def broken():
        raise RuntimeError("no EGL display")

    monkeypatch.setattr(render_gl, "shared_context", broken)
    with caplog.at_level(logging.WARNING, logger="hmr.vis.render"):
        r = Renderer(16, 16, "auto")
    assert r.backend == "torch"
    assert "torch z-buffer" in caplog.text
    with pytest.raises(RuntimeError, match="moderngl EGL backend unavailable"):
        Renderer(16, 16, "moderngl")


@pytest.mark.parametrize("kwargs, match", [
    (dict(K=np.eye(4)), "K must be a finite"),
    (dict(K=np.array([[300, 0, 64], [0, -1, 48], [0, 0, 1.0]])), "positive focal"),
    (dict(vertices=np.full((3, 3), np.nan)), "NaN"),
    (dict(faces=np.array([[0, 1, 7]])), "face indices"),
    (dict(vertices=np.zeros((3, 2))), r"vertices must be \(V, 3\)"),
    (dict(color=(2.0, 0.0, 0.0)), r"\[0, 1\]"),
    (dict(background=np.zeros((5, 5, 3), np.uint8)), "background must be uint8"),
])
def test_bad_input_raises_clear_errors(kwargs, match):
    args = dict(vertices=np.array([[0, 0, 2], [0.1, 0, 2], [0, 0.1, 2]], np.float32),
                faces=np.array([[0, 1, 2]]), K=K, background=None, color=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Renderer(W, H, "torch").render(**args)


def test_unknown_backend_and_bad_size():
    with pytest.raises(ValueError, match="unknown render backend"):
        Renderer(8, 8, "vulkan")
    with pytest.raises(ValueError, match="image size"):
        Renderer(0, 8)
    assert render_mod.BACKENDS[0] == "auto"


@pytest.mark.skipif("moderngl" not in BACKENDS, reason="no EGL context on this machine")
def test_importing_torch_compiler_stack_after_rendering_does_not_crash():
    # triton (pulled in lazily by torch, e.g. via roma) and Mesa's llvmpipe both bundle LLVM; the renderer must
    # load them in the safe order, or this subprocess dies with a segfault.
    import subprocess
    import sys

    code = ("import numpy as np; from hmr.vis.render import Renderer; "
            "r = Renderer(16, 16, 'moderngl'); "
            "r.render(np.array([[0, 0, 2], [0.1, 0, 2], [0, 0.1, 2]]), np.array([[0, 1, 2]]), np.diag([20., 20., 1.])); "
            "import roma; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
