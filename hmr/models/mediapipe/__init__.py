"""MediaPipe's BlazePose / hand / selfie networks as plain PyTorch modules (NCHW, fp32 parameters).

Set-up converts the ``.tflite`` files of the ``mediapipe==0.10.21`` wheel once (``bash scripts/setup_env.sh`` or
``tools/convert_mediapipe.py``) into ``weights/mediapipe/<name>.pt``; at run time only torch is needed.

- :func:`load_network` -> :class:`MediaPipeNet` (outputs in TFLite order and shapes, named intermediates)
- :class:`MediaPipeEncoder` -> a timm-like backbone (``blazepose_full``, ``mediapipe_hand``)
- :class:`MediaPipeLandmarkFeatures` -> the network's own landmark predictions as features (``pooling: landmarks``)
- :data:`NETWORKS` -> file, pinned sha256 and input convention of each network
"""
from hmr.models.mediapipe.convert import (NETWORKS, ConvertedFileError, NetworkInfo, check_all, convert,
                                          default_weights_dir, load_network, network_path)
from hmr.models.mediapipe.encoder import ENCODERS, MediaPipeEncoder, encoder_stages
from hmr.models.mediapipe.landmark_features import MediaPipeLandmarkFeatures
from hmr.models.mediapipe.network import MediaPipeNet, build_network

__all__ = ["NETWORKS", "NetworkInfo", "ConvertedFileError", "check_all", "convert", "default_weights_dir",
           "load_network", "network_path", "ENCODERS", "MediaPipeEncoder", "encoder_stages", "MediaPipeLandmarkFeatures", "MediaPipeNet",
           "build_network"]
