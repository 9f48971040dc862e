"""MediaPipe's .tflite networks -> verified, converted torch files -> :class:`MediaPipeNet`.

The .tflite files come from the ``mediapipe==0.10.21`` wheel (the last release that ships them); each is
pinned by its full sha256 and refused if it differs. A converted file ``<weights_dir>/<name>.pt`` holds
``{"format_version", "name", "source", "source_sha256", "content_sha256", "spec", "state_dict"}`` (plain
Python values and fp32 tensors; read with ``torch.load(weights_only=True)``). Conversion is deterministic
(byte-identical files) and atomic (written to a temporary file, then renamed).
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from hmr.models.mediapipe.network import MediaPipeNet, build_network

FORMAT_VERSION = 1
MEDIAPIPE_VERSION = "0.10.21"
ENV_WEIGHTS_DIR = "HMR_WEIGHTS_DIR"
SETUP_HINT = ("run `bash scripts/setup_env.sh` (downloads mediapipe==0.10.21 with pip and converts it) or "
              "`.venv/bin/python tools/convert_mediapipe.py --wheel <mediapipe-0.10.21 wheel> --force`")


@dataclass(frozen=True)
class NetworkInfo:
    """One MediaPipe network: where it is in the wheel, the pinned sha256 of the .tflite file and of the converted
    content (:func:`content_digest`: changes only with the converter's output), and its input convention."""

    member: str
    sha256: str
    content_sha256: str
    input_size: Tuple[int, int]
    input_range: Tuple[float, float]
    summary: str


#: Input convention: RGB scaled linearly to ``input_range`` (MediaPipe's ``output_tensor_float_range``).
NETWORKS: Dict[str, NetworkInfo] = {
    "pose_detection": NetworkInfo(
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "47553fe2bcefcd8fc3435954c1e657e16ae5a1f37e78e0925b9dc113d1f9d1f0",
        (224, 224), (-1.0, 1.0),
        "person detector: 2,254 SSD anchors x (box 4 + 4 keypoints x 2) regressors, 2,254 score logits"),
    "pose_landmark_full": NetworkInfo(
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        "912512b42331eee0d0b6062709a85b81340b784239e8dab77e47a4971e841859",
        (256, 256), (0.0, 1.0),
        "BlazePose full: 39 x (x, y, z, visibility, presence) landmarks, pose flag, segmentation, heatmaps, "
        "39 x 3 world landmarks"),
    "palm_detection_full": NetworkInfo(
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
        "816a3683c76bdbc5906315384a34d5c334a9ac29fe101538caa82b2d14e87620",
        (192, 192), (0.0, 1.0),
        "palm detector: 2,016 anchors x (box 4 + 7 keypoints x 2) regressors, 2,016 score logits"),
    "palm_detection_lite": NetworkInfo(
        "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
        "47c4ac6c204e77fa76b05ba4b37a564a03309c69c28d05e5a407f010736efc18",
        (192, 192), (0.0, 1.0),
        "palm detector (lite)"),
    "hand_landmark_full": NetworkInfo(
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
        "65aeba728dfd31d9b95e019f8218249ecbe1d62f357a3b64c1b94872389182de",
        (224, 224), (0.0, 1.0),
        "hand landmarks: 21 x (x, y, z), hand flag, handedness, 21 x 3 world landmarks"),
    "hand_landmark_lite": NetworkInfo(
        "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
        "0f188f4759e74cc7e2075feb7318e4f874c0517fd674c583688e9d234455b749",
        (224, 224), (0.0, 1.0),
        "hand landmarks (lite)"),
    "selfie_segmentation": NetworkInfo(
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        "479ae9063cbd023bc7ccfdcb6aafa0ca037bc5c9b05f1e159ba25a098356d948",
        (256, 256), (0.0, 1.0),
        "person segmentation: 256 x 256 foreground probability"),
}


class ConvertedFileError(ValueError):
    """A converted network file that is unreadable, of another format, or does not match its checksums."""


def default_weights_dir() -> Path:
    """``$HMR_WEIGHTS_DIR/mediapipe`` if set, else ``weights/mediapipe`` at the repository root."""
    root = os.environ.get(ENV_WEIGHTS_DIR)
    return (Path(root) if root else Path(__file__).resolve().parents[3] / "weights") / "mediapipe"


def network_path(name: str, weights_dir: Optional[Union[str, Path]] = None) -> Path:
    """Where the converted file of network ``name`` lives."""
    _info(name)
    return Path(weights_dir if weights_dir is not None else default_weights_dir()) / f"{name}.pt"


def _info(name: str) -> NetworkInfo:
    if name not in NETWORKS:
        raise KeyError(f"unknown MediaPipe network {name!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[name]


def content_digest(spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the spec (canonical JSON) and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode())
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def convert_bytes(name: str, data: bytes) -> Dict[str, Any]:
    """Verify one .tflite file against its pinned sha256 and convert it to the payload that is saved."""
    from hmr.models.mediapipe.tflite_graph import parse_tflite  # needs the `tflite` package (setup time only)

    info = _info(name)
    digest = hashlib.sha256(data).hexdigest()
    if digest != info.sha256:
        raise ValueError(f"refusing to convert {name}: sha256 {digest} != pinned {info.sha256} "
                         f"(expected {info.member} from mediapipe=={MEDIAPIPE_VERSION})")
    spec, weights = parse_tflite(data, name)
    state_dict = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in weights.items()}
    return {"format_version": FORMAT_VERSION, "name": name, "source": f"mediapipe=={MEDIAPIPE_VERSION}:{info.member}",
            "source_sha256": digest, "content_sha256": content_digest(spec, state_dict), "spec": spec,
            "state_dict": state_dict}


def read_sources(source: Union[str, Path], names: Iterable[str]) -> Dict[str, bytes]:
    """The .tflite bytes of ``names`` from a mediapipe wheel, a folder holding the files (found by file name),
    or one .tflite file (identified by its sha256)."""
    source = Path(source)
    names = list(names)
    if source.is_file() and source.suffix != ".tflite" and zipfile.is_zipfile(source):  # (a .tflite with
        # metadata ends in a zip of its associated files, so the suffix decides)
        with zipfile.ZipFile(source) as wheel:
            present = set(wheel.namelist())
            missing = [NETWORKS[n].member for n in names if NETWORKS[n].member not in present]
            if missing:
                raise FileNotFoundError(f"{source} lacks {', '.join(missing)}: "
                                        f"use the mediapipe=={MEDIAPIPE_VERSION} wheel")
            return {n: wheel.read(NETWORKS[n].member) for n in names}
    if source.is_dir():
        found = {}
        for n in names:
            hits = sorted(source.rglob(Path(NETWORKS[n].member).name))
            if not hits:
                raise FileNotFoundError(f"no {Path(NETWORKS[n].member).name} under {source}")
            found[n] = hits[0].read_bytes()
        return found
    if source.is_file():
        data = source.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        match = [n for n in names if NETWORKS[n].sha256 == digest]
        if not match:
            raise ValueError(f"refusing to convert {source}: its sha256 {digest} matches none of the pinned "
                             f"MediaPipe networks ({', '.join(names)})")
        return {match[0]: data}
    raise FileNotFoundError(f"{source} does not exist")


def save_atomic(payload: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(dict(payload), tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def convert(source: Union[str, Path], weights_dir: Optional[Union[str, Path]] = None,
            names: Optional[Iterable[str]] = None, force: bool = False) -> Dict[str, str]:
    """Convert ``names`` (default: all of :data:`NETWORKS`) from ``source`` (see :func:`read_sources`) into
    ``weights_dir``; a file that already verifies is kept unless ``force``. Returns ``{name: "converted" |
    "up to date"}``."""
    names = list(names) if names is not None else list(NETWORKS)
    todo = [n for n in names if force or check(n, weights_dir) is not None]
    status = {n: "up to date" for n in names if n not in todo}
    if todo:
        for name, data in read_sources(source, todo).items():
            payload = convert_bytes(name, data)
            if payload["content_sha256"] != NETWORKS[name].content_sha256:
                raise RuntimeError(f"converting {name} gave content sha256 {payload['content_sha256']}, the code pins "
                                   f"{NETWORKS[name].content_sha256}: the converter's output changed (update "
                                   "NETWORKS and FORMAT_VERSION in hmr/models/mediapipe/convert.py)")
            save_atomic(payload, network_path(name, weights_dir))
            status[name] = "converted"
    return {n: status[n] for n in names}


def load_converted(name: str, weights_dir: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
    """The verified payload of network ``name`` (see the module docstring)."""
    path = network_path(name, weights_dir)
    if not path.is_file():
        raise FileNotFoundError(f"MediaPipe network {name!r}: {path} does not exist; to create it, {SETUP_HINT}")
    fix = f"delete {path} and {SETUP_HINT}"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ConvertedFileError(f"{path} is not a readable converted MediaPipe network ({exc}); {fix}") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise ConvertedFileError(f"{path} has format {found!r}, this code reads format {FORMAT_VERSION}; {fix}")
    if payload.get("name") != name or payload.get("source_sha256") != NETWORKS[name].sha256:
        raise ConvertedFileError(f"{path} was not converted from the pinned {NETWORKS[name].member} "
                                 f"(name {payload.get('name')!r}, source sha256 {payload.get('source_sha256')}); {fix}")
    if payload.get("content_sha256") != NETWORKS[name].content_sha256:
        raise ConvertedFileError(f"{path} was made by another version of the converter (content sha256 "
                                 f"{payload.get('content_sha256')}, this code expects "
                                 f"{NETWORKS[name].content_sha256}); {fix}")
    if content_digest(payload["spec"], payload["state_dict"]) != NETWORKS[name].content_sha256:
        raise ConvertedFileError(f"{path}: content checksum mismatch (corrupted or edited file); {fix}")
    return payload


def load_network(name: str, weights_dir: Optional[Union[str, Path]] = None, pretrained: bool = True) -> MediaPipeNet:
    """The converted network ``name`` (one of :data:`NETWORKS`) as a :class:`MediaPipeNet` in eval mode;
    ``pretrained=False`` keeps the architecture and re-initialises the weights. ``weights_dir`` defaults to
    :func:`default_weights_dir`."""
    payload = load_converted(name, weights_dir)
    try:
        return build_network(payload["spec"], payload["state_dict"] if pretrained else None)
    except (RuntimeError, KeyError, ValueError) as exc:
        path = network_path(name, weights_dir)
        raise ConvertedFileError(f"{path}: weights do not fit the stored graph ({exc}); delete {path} and "
                                 f"{SETUP_HINT}") from exc


def check(name: str, weights_dir: Optional[Union[str, Path]] = None) -> Optional[str]:
    """``None`` if the converted file of ``name`` exists and verifies, else what is wrong with it."""
    try:
        load_network(name, weights_dir)
    except (FileNotFoundError, ConvertedFileError) as exc:
        return str(exc)
    return None


def check_all(weights_dir: Optional[Union[str, Path]] = None,
              names: Optional[Iterable[str]] = None) -> Dict[str, Optional[str]]:
    """:func:`check` for ``names`` (default: all of :data:`NETWORKS`)."""
    return {n: check(n, weights_dir) for n in (names if names is not None else NETWORKS)}

