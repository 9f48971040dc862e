"""The training loop: step-based, resumable, distributed (torchrun), with NaN-step skipping and diagnostics."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from hmr import losses
from hmr.config import Config, dump_yaml
from hmr.data import build_mixed_dataset
from hmr.data.shards import build_shard_stream
from hmr.engine import checkpoint as ckpt
from hmr.engine.csv_log import append_row, drop_rows_after
from hmr.engine.builders import build_body_model, build_model, build_representation, keypoint_settings
from hmr.engine.distributed import DistInfo, all_reduce_mean, cleanup, init_distributed
from hmr.engine.feature_store import evaluation_cache, training_cache
from hmr.engine.forward import Annealing, OrthoSwitches, body_forward, decode_outputs
from hmr.engine.gap import training_log_stats
from hmr.engine.keypoint_terms import LandmarkTerm, heatmap_term
from hmr.engine.run_folder import check_new_run, remove_stale_temp_files
from hmr.engine.sampler import ResumableBatchSampler, SeededDataset
from hmr.engine.schedule import build_scheduler, parameter_groups
from hmr.engine.settings import check_train_settings
from hmr.fitting.keypoint_model import KeypointModel
from hmr.rotations import matrix_stats, summarize_stats
from hmr.utils.io import write_json, write_text

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite steps; the last good checkpoint is kept."""


def move_batch(batch: Mapping[str, Any], device: torch.device) -> Dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


class Trainer:
    """Owns one training run in ``out_dir``: model, optimizer, schedule, data stream, logs, checkpoints.

    Without ``resume`` a folder that already holds a run is refused (:class:`~hmr.engine.run_folder.RunFolderError`;
    clear it first with :func:`~hmr.engine.run_folder.prepare_run_folder`). Temporary files of a killed
    checkpoint write are removed on start."""

    def __init__(self, cfg: Config, out_dir: Path, resume: bool = False) -> None:
        self.cfg, self.out_dir = cfg, Path(out_dir)
        tcfg = cfg.train
        check_train_settings(tcfg)
        want_cuda = tcfg.get("device", "auto") in ("auto", "cuda") and torch.cuda.is_available()
        self.device = torch.device("cuda" if want_cuda else "cpu")
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.is_main:
            if not resume:
                check_new_run(self.out_dir)
            remove_stale_temp_files(self.out_dir, self.out_dir / "checkpoints")
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        seed = int(tcfg.get("seed", 0))
        torch.manual_seed(seed)
        if tcfg.get("deterministic", False):
            torch.use_deterministic_algorithms(True, warn_only=True)

        body_model = build_body_model(cfg)
        self.representation = build_representation(cfg)
        self.switches = OrthoSwitches.from_config(cfg.representation)
        self.annealing = Annealing.from_config(cfg.representation.get("anneal"))
        self.keypoint_set, self.root_joints = keypoint_settings(cfg, body_model)
        self.weights = losses.LossWeights.from_config(cfg.get("loss"))
        # without a vertex loss the losses read keypoints only: no mesh is skinned (same values; docs/cpu_training.md)
        self.keypoint_model = (None if self.weights.vertices
                               else KeypointModel(body_model, self.keypoint_set).to(self.device))
        self.body_model = body_model.to(self.device)
        self.model = build_model(cfg, self.body_model, self.representation).to(self.device)
        if self.weights.heatmap and self.model.heatmap_head is None:
            raise ValueError("loss.heatmap > 0 needs a heatmap head: set model.heatmaps.enabled=true "
                             "(with model.pooling=flatten)")
        self.landmark_term = LandmarkTerm(self.model, self.keypoint_set) if self.weights.landmarks else None
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, float(tcfg.lr),
                                                           float(tcfg.get("backbone_lr_scale", 1.0))),
                                          lr=float(tcfg.lr),
                                          weight_decay=float(tcfg.get("weight_decay", 0.0)))
        self.total_steps = int(tcfg.steps)
        self.scheduler = build_scheduler(self.optimizer, tcfg.get("schedule", {}), self.total_steps)
        self.ddp_model = (DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                  if self.device.type == "cuda" else None)
                          if self.dist.enabled else self.model)

        self.cached = bool(tcfg.get("cache_features", False))
        self.streamed = bool(cfg.data.get("shards"))   # data.shards: webdataset shards (hmr/data/shards)
        if self.streamed and self.cached:
            raise ValueError("train.cache_features and data.shards cannot be combined (the feature cache "
                             "needs random access to the training set)")
        if self.streamed:
            self.dataset = None
        elif self.cached:  # a frozen encoder's maps, computed once (no augmentation; hmr/engine/feature_cache.py)
            self.dataset = training_cache(cfg, self.model.backbone, self.device, seed, progress=self.dist.is_main)
            self.model.backbone.features_input = True
        else:
            self.dataset = build_mixed_dataset(cfg.data, split="train")
        self.global_batch = int(tcfg.batch_size)
        self.step = 0
        self.skipped_steps = 0
        self.consecutive_bad = 0
        self.train_seconds = 0.0          # wall-clock of the training steps (no data waits, no evals), resumes included
        self.eval_dataset = None          # cached runs: the frozen encoder's features of the evaluation crops
        self.unreadable_images = 0        # consumed by the steps of this run and (resumed) earlier ones
        self.epoch_unreadable = 0         # consumed in the current epoch, on this rank
        if resume:
            self._resume()
        # The loader draws its workers' base seed from its own generator, not the global RNG: a resumed run
        # restores the global RNG (dropout, ...) and must not shift it by creating the loader at another step.
        # Augmentation does not depend on the base seed (every sample is seeded from its key).
        workers = 0 if self.cached else int(tcfg.get("num_workers", 0))  # cached items are in memory
        if self.streamed:
            if self.global_batch % self.dist.world_size:
                raise ValueError(f"global batch {self.global_batch} is not divisible by world size "
                                 f"{self.dist.world_size}")
            per_rank = self.global_batch // self.dist.world_size
            stream = build_shard_stream(cfg.data, seed, self.dist.rank, self.dist.world_size, per_rank,
                                        start_step=self.step)
            self.batches_per_epoch = stream.batches_per_epoch(self.global_batch)
            self.loader = DataLoader(stream, batch_size=per_rank, num_workers=workers,
                                     persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))
        else:
            sampler = ResumableBatchSampler(len(self.dataset), self.global_batch, seed, self.dist.rank,
                                            self.dist.world_size, weights=getattr(self.dataset, "sample_weights",
                                                                                  None))
            sampler.start = sampler.position_after(self.step)
            self.batches_per_epoch = sampler.batches_per_epoch
            self.loader = DataLoader(SeededDataset(self.dataset, seed), batch_sampler=sampler,
                                     num_workers=workers, persistent_workers=workers > 0,
                                     generator=torch.Generator().manual_seed(seed))
        self.csv_path = self.out_dir / "log.csv"
        self.writer = None
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.out_dir / "config.yaml", dump_yaml(cfg))
            if tcfg.get("tensorboard", True):
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    # ------------------------------------------------------------------ checkpoints
    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    def _resume(self) -> None:
        path = self.last_checkpoint
        if not path.is_file():
            log.info("no checkpoint at %s: starting from scratch", path)
            if self.dist.is_main:
                drop_rows_after(self.out_dir / "log.csv", 0)
            return
        payload = ckpt.load_checkpoint(path)
        ckpt.check_compatible(payload, self.cfg.body_model.name, self.cfg.representation.name, path)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if payload["scheduler"] is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        ckpt.set_rng_state(payload["rng"])
        self.step = int(payload["step"])
        self.skipped_steps = int(payload["extra"].get("skipped_steps", 0))
        self.train_seconds = float(payload["extra"].get("train_seconds", 0.0))
        self.unreadable_images = int(payload["extra"].get("unreadable_images", 0))
        # the stored count is the sum over ranks: rank 0 carries it on
        self.epoch_unreadable = int(payload["extra"].get("epoch_unreadable", 0)) if self.dist.is_main else 0
        if self.dist.is_main:
            dropped = drop_rows_after(self.out_dir / "log.csv", self.step)
            if dropped:
                log.info("dropped %d log.csv row(s) written after step %d by the interrupted run", dropped,
                         self.step)
        log.info("resumed from %s at step %d", path, self.step)

    def save(self, name: str = "last.pt") -> None:
        """Write ``checkpoints/<name>`` (rank 0; every rank must call it: counts are summed over ranks)."""
        epoch_unreadable = self._reduce_count(self.epoch_unreadable)
        if not self.dist.is_main:
            return
        ckpt.save_checkpoint(self.out_dir / "checkpoints" / name, model=self.model, optimizer=self.optimizer,
                             scheduler=self.scheduler, step=self.step, config=self.cfg.to_dict(),
                             extra={"skipped_steps": self.skipped_steps, "unreadable_images": self.unreadable_images,
                                    "epoch_unreadable": epoch_unreadable, "train_seconds": self.train_seconds})

    # ------------------------------------------------------------------ one step
    def compute_losses(self, batch: Dict[str, Any]) -> tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        """Forward pass and the weighted loss terms (only terms with a non-zero weight are computed)."""
        amp = self.device.type == "cuda" and self.cfg.train.get("amp", False)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            out = self.ddp_model(batch["img"], batch["bbox_info"])
        out = {k: (v.float() if torch.is_tensor(v) else v) for k, v in out.items()}
        pred = decode_outputs(out, self.representation, self.body_model, batch, self.switches,
                              self.keypoint_set, stage="train",
                              blend=self.annealing.blend(self.step, self.total_steps),
                              keypoint_model=self.keypoint_model)
        w, terms = self.weights, {}
        if w.rotation:
            terms["rotation"] = losses.rotation_loss(pred["rotmats_loss"], batch["pose"], batch["has_pose"])
        if w.joints3d:
            terms["joints3d"] = losses.joints3d_loss(pred["keypoints_3d"], batch["joints_3d"], self.root_joints)
        if w.keypoints2d:
            terms["keypoints2d"] = losses.keypoint2d_loss(pred["keypoints_2d"], batch["keypoints_2d"],
                                                          batch["center"], batch["scale"] * 200.0)
        if w.betas:
            terms["betas"] = losses.betas_prior(pred["betas"])
        if w.betas_gt:
            terms["betas_gt"] = losses.betas_loss(pred["betas"], batch["betas"], batch["has_betas"])
        if w.vertices:
            with torch.no_grad():
                gt = body_forward(self.body_model, batch["pose"], batch["betas"], None, {})
            mask = batch["has_pose"] * batch["has_betas"]
            terms["vertices"] = losses.vertex_loss(pred["vertices"], gt["vertices"], mask)
        if w.heatmap and "heatmaps" in out:
            terms["heatmap"] = heatmap_term(self.model.heatmap_head, out["heatmaps"], batch,
                                            tuple(int(v) for v in self.cfg.data.crop_size))
        if self.landmark_term is not None:
            terms["landmarks"] = self.landmark_term(out["landmarks_2d"], batch)
        if w.orthogonality:
            terms["orthogonality"] = losses.orthogonality_penalty(
                self.representation.train_matrix(pred["pose_params"]))
        if w.representation:
            has_pose = batch["has_pose"] > 0
            params = pred["pose_params"]
            terms["representation"] = (self.representation.extra_loss(params[has_pose], batch["pose"][has_pose])
                                       if bool(has_pose.any()) else params.sum() * 0.0)
        return terms, pred

    def train_step(self, batch: Dict[str, Any], with_stats: bool = True) -> Dict[str, float]:
        """One optimisation step; ``with_stats`` adds the raw-matrix and train/inference-gap diagnostics
        (an extra SVD and forward kinematics, so the loop computes them on logging steps only)."""
        self.model.train()
        terms, pred = self.compute_losses(batch)
        loss = losses.total_loss(terms, self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        finite = torch.isfinite(loss)
        if bool(finite):
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                       float(self.cfg.train.get("grad_clip", 0.0)) or math.inf)
            finite = torch.isfinite(grad_norm)
        else:
            grad_norm = torch.tensor(float("nan"))
        # Every rank must agree on skipping, or DDP would desynchronise.
        finite = bool(all_reduce_mean(finite.float().reshape(1), self.dist).item() == 1.0)
        logged = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}
        if self.dist.enabled:  # log global-batch means, comparable with a single-process run
            stacked = all_reduce_mean(torch.stack([v.float() for v in logged.values()]), self.dist)
            logged = dict(zip(logged, stacked))
        record = {"grad_norm": float(grad_norm), **{k: float(v) for k, v in logged.items()}}
        if finite:
            self.optimizer.step()
            self.consecutive_bad = 0
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            self.consecutive_bad += 1
            log.warning("step %d: non-finite loss or gradient (loss=%s, grad_norm=%s): step skipped",
                        self.step, record["loss"], record["grad_norm"])
        self.scheduler.step()   # a step-indexed schedule: advances on taken and skipped steps alike
        record["skipped"] = float(not finite)
        record["anneal_weight"] = self.annealing.weight(self.step, self.total_steps)
        params = pred["pose_params"].detach()
        if not with_stats or not (bool(torch.isfinite(params).all()) and bool(torch.isfinite(pred["betas"]).all())):
            return record       # no diagnostics of non-finite predictions (SVD cannot take them)
        train_rotmats = self.representation.train_matrix(params)
        record.update(summarize_stats(matrix_stats(train_rotmats.float())))
        record.update(training_log_stats(self.body_model, train_rotmats,
                                         self.representation.inference_rotation(params), pred["betas"],
                                         batch.get("pose"), batch.get("betas"), batch.get("has_pose")))
        return record

    # ------------------------------------------------------------------ loop
    def _batches(self) -> Iterator[Dict[str, Any]]:
        for batch in self.loader:
            yield move_batch(batch, self.device)

    def run(self) -> Dict[str, Any]:
        tcfg = self.cfg.train
        ckpt_every = int(tcfg.get("checkpoint_every", 200))
        log_every = int(tcfg.get("log_every", 10))
        eval_every = int(tcfg.get("eval_every", 0))
        max_bad = int(tcfg.get("max_consecutive_nonfinite", 20))
        start, t0 = self.step, time.time()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", disable=not self.dist.is_main,
                   dynamic_ncols=True)
        history = []
        try:
            self._loop(bar, history, log_every, ckpt_every, eval_every, max_bad)
        finally:
            bar.close()
        summary = {
            "steps": self.step, "steps_this_run": self.step - start, "skipped_steps": self.skipped_steps,
            "unreadable_images": self.unreadable_images + self._reduce_count(self.epoch_unreadable),
            "seconds": round(time.time() - t0, 1), "final": history[-1] if history else {},
            "checkpoint": str(self.last_checkpoint),
        }
        if eval_every or tcfg.get("final_eval", True):
            result = self._evaluate()
            summary["eval"] = result["metrics"] if result else None
            if result:
                summary["eval_metric_samples"] = result["metric_samples"]
                summary["eval_refused_metrics"] = result["refused"]
        if self.dist.is_main:
            write_json(self.out_dir / "summary.json", summary)
        cleanup(self.dist)
        return summary

    def _loop(self, bar, history: list, log_every: int, ckpt_every: int, eval_every: int, max_bad: int) -> None:
        """Steps until ``train.steps``: train, log, end epochs, evaluate and checkpoint on schedule."""
        batches = self._batches()
        while self.step < self.total_steps:
            batch = next(batches)
            if "unreadable" in batch:
                self.epoch_unreadable += int(batch["unreadable"].sum())
            logging_step = (self.step + 1) % log_every == 0 or self.step + 1 == self.total_steps
            started = time.perf_counter()
            record = self.train_step(batch, with_stats=logging_step)
            self.train_seconds += time.perf_counter() - started
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if self.consecutive_bad >= max_bad:
                kept = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint.is_file()
                        else "no checkpoint was written yet")
                raise TrainingDiverged(f"{self.consecutive_bad} consecutive non-finite steps at step {self.step} "
                                       f"(train.max_consecutive_nonfinite={max_bad}); {kept} "
                                       "(lower train.lr or set train.grad_clip)")
            if logging_step:
                record.update(step=self.step, lr=self.optimizer.param_groups[0]["lr"])
                self._log(record)
                history.append(record)
            if self.step % self.batches_per_epoch == 0:
                self._end_of_epoch()
            if eval_every and self.step % eval_every == 0:
                self._evaluate()
            if self.step % ckpt_every == 0 or self.step == self.total_steps:
                self.save()

    def _reduce_count(self, count: int) -> int:
        """Sum of a per-rank count over all ranks."""
        value = torch.tensor([float(count)], device=self.device)
        return int(round(float(all_reduce_mean(value, self.dist).item()) * self.dist.world_size))

    def _end_of_epoch(self) -> None:
        """Report (and reset) the unreadable images the steps of the epoch that just ended consumed."""
        epoch = self.step // self.batches_per_epoch
        skipped = self._reduce_count(self.epoch_unreadable)
        if skipped:
            log.warning("epoch %d: %d unreadable image(s) skipped and replaced", epoch, skipped)
        else:
            log.info("epoch %d done (no unreadable images)", epoch)
        self.unreadable_images += skipped
        self.epoch_unreadable = 0

    def _log(self, record: Dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        append_row(self.csv_path, record)
        if self.writer is not None:
            for key, value in record.items():
                if key != "step":
                    self.writer.add_scalar(f"train/{key}", value, self.step)
            self.writer.flush()

    def _evaluate(self) -> Optional[Dict[str, Any]]:
        """Evaluate on ``eval.dataset`` (rank 0): ``metrics``, ``metric_samples``, ``refused`` (None elsewhere)."""
        if not self.dist.is_main or not self.cfg.get("eval"):
            return None
        from hmr.engine.evaluator import evaluate_config
        max_samples = self.cfg.eval.get("max_samples_during_training")
        if self.cached and self.eval_dataset is None:  # the frozen encoder's features of the test crops, once
            self.eval_dataset = evaluation_cache(self.cfg, self.model.backbone, self.device, max_samples)
        result = evaluate_config(self.cfg, self.model, self.body_model, self.representation,
                                 max_samples=max_samples, dataset=self.eval_dataset)
        if self.writer is not None:
            for key, value in result["metrics"].items():
                self.writer.add_scalar(f"eval/{key}", value, self.step)
        with open(self.out_dir / "eval_history.csv", "a") as handle:
            handle.write(f"{self.step},{','.join(f'{k}={v:.3f}' for k, v in result['metrics'].items())},"
                         f"train_seconds={self.train_seconds:.2f}\n")
        return {k: result[k] for k in ("metrics", "metric_samples", "refused")}

