"""hmr: rotation-honest 3D human body and hand mesh recovery (PRoM and every other rotation representation)."""
__version__ = "0.1.0"
