"""hmr: rotation-honest 3D human body and hand mesh recovery (PRoM and every other rotation representation)."""
import os as _os

# OpenMP threads that spin while waiting make a CPU run 10x slower as soon as another process shares the cores
# (measured here: 0.14 vs 1.5 training steps/s on 2 shared cores). Sleep instead, unless the user chose otherwise.
# Effective only when hmr is imported before torch (every tool does).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
