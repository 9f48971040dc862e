"""The GPU check (``tools/gpu_check.py``): CPU-vs-device numerical parity, then every GPU preset trained for a
few hundred steps on the synthetic sets (AMP as the preset says), evaluated, and run through the demo.

Parity is measured in float32 with TF32 off (so that a difference is a bug, not a precision choice): rotation
maps of every representation, body-model forward kinematics (body and hand), and one full training step (same
initial weights and batch: loss terms and the updated parameters). Training throughput is reported twice:
end-to-end (the preset's own data loader feeding the model: what a run gets) and model-only (a fixed batch
already on the device: what the data pipeline must keep up with, the figure ``tools/bench_data.py`` divides by).
The same code runs on the CPU with tiny settings, which is how the test suite keeps it alive.
"""
from __future__ import annotations

import copy
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch

from hmr.config import Config, load_config, merge
from hmr.engine.bench import core_loss, random_batch
from hmr.engine.builders import build_body_model, build_model, build_representation, keypoint_settings
from hmr.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
OPEN_MODELS = {"smpl-neutral": "open-smpl", "mano-right": "open-mano-right"}  # no licensed file is needed
SYNTHETIC_SETS = {  # kind -> (data.train, data.sets, eval.dataset)
    "body": ({"synth_body": 1.0}, {"synth_body": {"npz": "body_quick/{split}.npz", "images": "body_quick"}},
             "synth_body"),
    "hand": ({"synth_hand": 1.0}, {"synth_hand": {"root": "hand_quick"}}, "synth_hand"),
}


@dataclass
class CheckSettings:
    """What to run: ``steps`` per preset (``batch_size`` None: the preset's own), data from ``data_root``."""

    presets: Sequence[Path]
    data_root: Path
    out_dir: Path
    device: str = "cuda"
    steps: int = 200
    batch_size: Optional[int] = None
    num_workers: int = 8
    eval_samples: int = 256
    throughput_steps: int = 20
    demo_image: Optional[Path] = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max())


def _guarded(name: str, fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Run one section; a failure is recorded (with its traceback) instead of ending the check."""
    try:
        return {"ok": True, **fn()}
    except Exception as exc:  # noqa: BLE001 - the report must say what failed and go on
        return {"ok": False, "section": name, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=6)}


# ---------------------------------------------------------------------------------------------- parity
def rotation_parity(device: torch.device) -> Dict[str, Any]:
    """Max |CPU - device| of every representation's training matrix and inference rotation."""
    from hmr.rotations import get, names
    out = {}
    for name in names():
        rep = get(name)
        x = torch.randn(256, rep.dim, generator=torch.Generator().manual_seed(0))
        out[name] = {"train_matrix": _max_abs(rep.train_matrix(x), rep.train_matrix(x.to(device))),
                     "inference_rotation": _max_abs(rep.inference_rotation(x),
                                                    rep.inference_rotation(x.to(device)))}
    return {"max_abs": out, "worst": max(max(v.values()) for v in out.values())}


def fk_parity(device: torch.device) -> Dict[str, Any]:
    """Max |CPU - device| of vertices and joints (millimetres) for the open body and hand models."""
    from hmr import body
    from hmr.rotations import axis_angle_to_matrix
    out = {}
    for name in ("open-smpl", "open-mano-right"):
        model = body.load(name)
        g = torch.Generator().manual_seed(1)
        pose = axis_angle_to_matrix(0.4 * torch.randn(64, model.num_joints, 3, generator=g))
        betas = torch.randn(64, model.num_betas, generator=g)
        ref = model(full_pose=pose, betas=betas)
        dev = model.to(device)(full_pose=pose.to(device), betas=betas.to(device))
        out[name] = {"vertices_mm": 1e3 * _max_abs(ref.vertices, dev.vertices),
                     "joints_mm": 1e3 * _max_abs(ref.joints, dev.joints)}
    return {"max_abs": out, "worst_mm": max(max(v.values()) for v in out.values())}


def train_step_parity(cfg: Mapping[str, Any], device: torch.device, batch_size: int = 8) -> Dict[str, Any]:
    """One training step (forward, losses, backward, SGD) from the same weights and batch on CPU and device,
    float32, dropout off (its masks come from different generators): relative difference of the loss, the
    gradient and the updated parameters. (Adam's first update is ~lr * sign(gradient), which flips for gradient
    entries near zero on any change of summation order: SGD compares the step itself.)"""
    from hmr.engine.forward import OrthoSwitches, decode_outputs
    cfg = Config(copy.deepcopy(cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)))
    cfg["model"]["pretrained"] = False   # parity does not need pretrained weights
    results = {}
    for where in ("cpu", device.type):
        dev = torch.device("cpu") if where == "cpu" else device
        body_model = build_body_model(cfg).to(dev)
        rep = build_representation(cfg)
        torch.manual_seed(0)
        model = build_model(cfg, body_model, rep).to(dev).train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        kp_set, root = keypoint_settings(cfg, body_model)
        batch = random_batch(body_model.cpu(), batch_size, cfg["model"]["input_size"], kp_set)
        body_model.to(dev)
        batch = {k: v.to(dev) for k, v in batch.items()}
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        out = model(batch["img"], batch["bbox_info"])
        pred = decode_outputs(out, rep, body_model, batch, OrthoSwitches.from_config(cfg["representation"]),
                              kp_set, "train")
        loss = core_loss(pred, batch, root)
        opt.zero_grad()
        loss.backward()
        opt.step()
        grad = torch.cat([p.grad.flatten().cpu() for p in model.parameters() if p.grad is not None])
        after = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
        update = after - torch.cat([before[k].flatten().cpu() for k, _ in model.named_parameters()])
        results[where] = (float(loss.detach()), grad, after, update)
    (loss_a, grad_a, after_a, upd_a), (loss_b, grad_b, after_b, upd_b) = results["cpu"], results[device.type]
    rel = lambda a, b: float((a - b).norm() / a.norm().clamp_min(1e-30))  # noqa: E731
    return {"loss_cpu": loss_a, "loss_device": loss_b, "loss_rel_diff": abs(loss_a - loss_b) / abs(loss_a),
            "grad_rel_diff": rel(grad_a, grad_b), "update_rel_diff": rel(upd_a, upd_b),
            "params_max_abs_diff": float((after_a - after_b).abs().max())}


def parity_checks(cfg: Mapping[str, Any], device: torch.device) -> Dict[str, Any]:
    """All three parity sections, float32 with TF32 off."""
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        return {"rotations": _guarded("rotations", lambda: rotation_parity(device)),
                "forward_kinematics": _guarded("forward_kinematics", lambda: fk_parity(device)),
                "train_step": _guarded("train_step", lambda: train_step_parity(cfg, device))}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


# ---------------------------------------------------------------------------------------------- presets
def preset_config(path: Path, settings: CheckSettings) -> Config:
    """The preset with the synthetic set of its kind as training and evaluation data, and the check's sizes."""
    cfg = load_config(path)
    preset_model = str(cfg["body_model"]["name"])
    kind = "hand" if "mano" in preset_model else "body"
    train, sets, eval_set = SYNTHETIC_SETS[kind]
    tcfg = cfg["train"]
    batch = int(settings.batch_size or tcfg["batch_size"])
    overrides = {
        "body_model": {"name": OPEN_MODELS.get(preset_model, preset_model)},
        "data": {"root": str(settings.data_root), "train": train, "sets": sets, "epoch_length": None},
        "train": {"steps": settings.steps, "batch_size": batch, "num_workers": settings.num_workers,
                  "checkpoint_every": settings.steps, "eval_every": 0, "final_eval": False, "log_every": 10,
                  "tensorboard": False, "device": settings.device, "cache_features": False},
        "eval": {"dataset": eval_set, "split": "test", "batch_size": min(batch, 64),
                 "num_workers": settings.num_workers},
    }
    cfg = Config(merge(cfg.to_dict(), overrides))
    cfg["data"]["train"] = train        # mappings merge: replace the preset's real-data mixture outright
    cfg["data"]["sets"] = sets
    return cfg


def model_throughput(trainer: Trainer, steps: int) -> float:
    """Images/s of training steps on one batch already on the device (no data loading)."""
    batch = next(trainer._batches())
    for _ in range(3):
        trainer.train_step(batch, with_stats=False)
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch, with_stats=False)
    _sync(trainer.device)
    return steps * int(batch["img"].shape[0]) / (time.perf_counter() - start)


def run_preset(path: Path, settings: CheckSettings) -> Dict[str, Any]:
    """Train, measure, evaluate and demo one preset; returns its report section."""
    from hmr.engine.evaluator import evaluate_config
    cfg = preset_config(path, settings)
    out = settings.out_dir / path.parent.name / path.stem
    device = torch.device(settings.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(cfg, out)
    start = time.perf_counter()
    summary = trainer.run()
    train_s = time.perf_counter() - start
    images = summary["steps_this_run"] * int(cfg["train"]["batch_size"])
    report: Dict[str, Any] = {
        "preset": str(path), "body_model": cfg["body_model"]["name"], "backbone": cfg["model"]["backbone"],
        "representation": cfg["representation"]["name"],
        "amp": bool(cfg["train"].get("amp", False)) and device.type == "cuda",
        "batch_size": int(cfg["train"]["batch_size"]), "steps": summary["steps"],
        "skipped_steps": summary["skipped_steps"], "train_seconds": round(train_s, 1),
        "images_per_s_end_to_end": round(images / train_s, 1),
        "final_loss": summary["final"].get("loss"), "first_loss": None,
    }
    report["images_per_s_model_only"] = round(model_throughput(trainer, settings.throughput_steps), 1)
    if device.type == "cuda":
        report["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    log_csv = out / "log.csv"
    if log_csv.is_file():
        rows = log_csv.read_text().splitlines()
        header = rows[0].split(",")
        report["first_loss"] = float(rows[1].split(",")[header.index("loss")]) if len(rows) > 1 else None
    start = time.perf_counter()
    result = evaluate_config(cfg, trainer.model, trainer.body_model, trainer.representation,
                             max_samples=settings.eval_samples)
    report["eval"] = {k: round(float(v), 2) for k, v in result["metrics"].items()}
    report["eval_seconds"] = round(time.perf_counter() - start, 1)
    if settings.demo_image is not None:
        report["demo"] = _guarded("demo", lambda: run_demo(out / "checkpoints/last.pt", settings.demo_image,
                                                           out / "demo", settings.device))
    return report


def run_demo(checkpoint: Path, image: Path, out: Path, device: str) -> Dict[str, Any]:
    """``tools/demo.py`` on one image with a whole-image box (no detector weights needed); its wall time."""
    import cv2
    h, w = cv2.imread(str(image)).shape[:2]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / "tools/demo.py"), "--checkpoint", str(checkpoint),
                           "--input", str(image), "--out", str(out), "--bbox", f"0,0,{w},{h}", "--device", device,
                           "--quiet"], capture_output=True, text=True, timeout=600, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"demo exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return {"seconds": round(time.perf_counter() - start, 1),
            "overlays": sorted(str(p.relative_to(out)) for p in out.rglob("overlay.png"))}


def environment(device: torch.device) -> Dict[str, Any]:
    info = {"torch": torch.__version__, "device": str(device), "python": sys.version.split()[0]}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return info


def run_gpu_check(settings: CheckSettings, on_section: Optional[Callable[[str, Dict[str, Any]], None]] = None
                  ) -> Dict[str, Any]:
    """The whole check; ``on_section(name, report)`` is called after each part (for incremental saving)."""
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda requested but torch sees no CUDA device; run with --device cpu --tiny")
    report: Dict[str, Any] = {"environment": environment(device), "presets": {}}
    notify = on_section or (lambda name, rep: None)
    report["parity"] = parity_checks(preset_config(Path(settings.presets[0]), settings), device)
    notify("parity", report)
    for path in settings.presets:
        report["presets"][str(path)] = _guarded(str(path), lambda p=Path(path): run_preset(p, settings))
        notify(str(path), report)
    report["ok"] = all(r.get("ok") for r in report["presets"].values()) and all(
        v.get("ok", True) for v in report["parity"].values() if isinstance(v, dict))
    return report


def preset_paths(names: Sequence[str]) -> List[Path]:
    """Preset files: explicit paths, or ``body`` / ``hand`` for every preset in ``configs/<kind>/``."""
    paths: List[Path] = []
    for name in names:
        if name in ("body", "hand"):
            paths += sorted(p for p in (REPO / "configs" / name).glob("*.yaml") if p.stem != "base_gpu")
        else:
            paths.append(Path(name))
    return paths
