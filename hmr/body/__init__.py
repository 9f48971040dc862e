"""hmr.body: SMPL/MANO-structured body and hand models (official files or the open models), joint sets.

Public API: :func:`load`, :class:`BodyModel`, :class:`BodyOutput`, and ``hmr.body.joint_sets``.
"""
from hmr.body import joint_sets
from hmr.body.model import BodyModel, BodyOutput
from hmr.body.registry import default_model_dir, load, names

__all__ = ["BodyModel", "BodyOutput", "joint_sets", "load", "names", "default_model_dir"]
