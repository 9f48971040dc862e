"""hmr.models: backbone factory (timm), regression heads (CLIFF IEF, HMR 2.0-style transformer), the regressor.

Nothing here is body- or hand-specific: J (24 body / 16 hand), the representation size ``dim`` and the mean
initialisation are constructor arguments.
"""
from hmr.models.backbone import KNOWN_BACKBONES, Backbone, build_backbone
from hmr.models.checkpoint import CheckpointMismatchError, load_backbone_checkpoint
from hmr.models.cliff_head import CliffHead
from hmr.models.ief import ResidualDecoder
from hmr.models.regressor import DEFAULT_MODEL_CONFIG, Regressor, build_regressor, resolve_model_config
from hmr.models.transformer_head import TransformerHead

__all__ = [
    "KNOWN_BACKBONES", "Backbone", "build_backbone", "CheckpointMismatchError", "load_backbone_checkpoint",
    "CliffHead", "ResidualDecoder", "TransformerHead", "DEFAULT_MODEL_CONFIG", "Regressor", "build_regressor",
    "resolve_model_config",
]
