"""hmr.vis: headless rendering (moderngl/EGL with a pure-torch fallback), overlays and plots."""
from hmr.vis.render import Light, Mesh, Renderer, RenderResult

__all__ = ["Light", "Mesh", "Renderer", "RenderResult"]
