"""Evaluation protocols: which dataset/split, joints, pelvis, GT body model and alignment make a number.

A :class:`Protocol` is a frozen, JSON-serialisable record written into every result, plus the two functions
that turn model outputs into its metrics: :meth:`Protocol.evaluate` (per-sample errors, metres) and
:meth:`Protocol.summarize` (means in mm, AUC/F-scores as fractions).

What the evaluation loop hands to ``evaluate`` (N samples):
- ``pred_joints``: the predicted body model's keypoints in ``input_set`` (e.g. ``h36m17`` =
  J_regressor_h36m @ vertices, via ``BodyModel.keypoints``).
- ``gt_joints``: with ``gt_from == "mesh"`` the GT mesh's keypoints in ``input_set`` (GT mesh from
  :meth:`Protocol.gt_body_model_for` the sample's gender); with ``gt_from == "file"`` the dataset's
  ``joints_3d[..., :3]`` in ``gt_input_set``.
- ``pred_vertices`` / ``gt_vertices`` where the protocol has vertex metrics.
:meth:`Protocol.score` scores each metric only on the samples that have the ground truth it needs
(:meth:`Protocol.requirements`: ``has_pose`` and ``has_betas`` for a GT mesh, ``has_3d`` for file joints,
``has_vertices`` for file vertices), reports how many samples each metric used, and refuses (does not report
0) a metric no sample is labelled for.
Sources: SPIN/CLIFF evaluation (3DPW, H36M), FreiHAND's official eval (see shared/reference).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from hmr import metrics as M
from hmr.body.joint_sets import LSP14_FROM_H36M17, LSP14_FROM_SPIN24, get_joint_set

_MAPS = {("h36m17", "lsp14"): LSP14_FROM_H36M17, ("spin24", "lsp14"): LSP14_FROM_SPIN24}
GENDER_NAMES = {0: "male", 1: "female", -1: "neutral"}
VERTEX_METRICS = frozenset({"pve", "pa_pve", "pa_mpvpe", "auc_vertices", "f@5mm", "f@15mm"})
#: Ground-truth labels a metric may need: name -> (item flag, what it is).
GT_LABELS = {"pose": ("has_pose", "GT pose"), "betas": ("has_betas", "GT shape (betas)"),
             "3d": ("has_3d", "GT 3D joints"), "vertices": ("has_vertices", "GT vertices")}


def summary_key(metric: str) -> str:
    """The key a protocol metric has in a summary (``pa_mpjpe`` -> ``pa_mpjpe_mm``; AUC/F-scores unchanged)."""
    return f"{metric}_mm" if metric in ("mpjpe", "pa_mpjpe", "pve", "pa_pve", "pa_mpvpe") else metric


@dataclass
class Scored:
    """:meth:`Protocol.score` output: summary ``metrics``, the samples each one used (``counts``), the metrics
    ``refused`` for want of labelled samples (key -> reason), and 1-D ``per_sample`` errors over all N samples
    (NaN where a sample was not scored)."""

    metrics: Dict[str, float] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)
    refused: Dict[str, str] = field(default_factory=dict)
    per_sample: Dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (all fields are plain JSON types)."""

    name: str
    dataset: str                       # registry name for hmr.data.build_dataset
    split: str
    kind: str                          # "body" or "hand"
    joint_set: str                     # joints the errors are computed on
    input_set: str                     # keypoint set the loop computes from meshes (pred, and GT if mesh)
    gt_from: str                       # "mesh" (GT body model forward) or "file" (dataset joints_3d)
    gt_input_set: str                  # keypoint set of the GT joints handed in
    pelvis: str                        # how both sets are centred before (non-PA) MPJPE / PVE
    pelvis_index: Optional[int]        # index in input_set subtracted (None: no centring / not used)
    gt_body_model: str                 # e.g. "smpl-{gender}"; "{gender}" is filled per sample
    gt_body_model_fallback: str        # used (and to be recorded) when the gendered files are missing
    pred_body_model: str
    alignment: str                     # "spin_similarity" or "freihand_official"
    metrics: Tuple[str, ...]
    units: str = "mm"
    notes: str = ""

    @property
    def metric_family(self) -> str:
        """``"freihand"`` (official FreiHAND alignment and metrics) or ``"spin"`` (MPJPE / PA-MPJPE / PVE)."""
        return "freihand" if self.alignment == "freihand_official" else "spin"

    @property
    def gt_from_mesh(self) -> bool:
        """True when GT joints come from a GT body-model forward pass (not from the dataset's joints)."""
        return self.gt_from == "mesh"

    # ---- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (JSON-ready)."""
        out = asdict(self)
        out["metrics"] = list(self.metrics)
        return out

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Protocol":
        """Inverse of :meth:`to_dict` (unknown or missing keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown protocol keys {sorted(unknown)}; known: {sorted(names)}")
        kwargs = dict(data)
        kwargs["metrics"] = tuple(kwargs.get("metrics", ()))
        return cls(**kwargs)

    def with_gt_body_model(self, model_name: str, reason: str) -> "Protocol":
        """A copy recording the GT body model actually used (e.g. the neutral fallback) and why."""
        note = f"GT body model: {model_name} ({reason})"
        return replace(self, gt_body_model=model_name, notes=f"{self.notes} {note}".strip())

    def gt_body_model_for(self, gender: int) -> str:
        """The GT body-model name for a gender code (0 male, 1 female, −1 unknown → neutral)."""
        return self.gt_body_model.format(gender=GENDER_NAMES.get(int(gender), "neutral"))

    # ---- metrics --------------------------------------------------------------------------------------
    def _to_eval_set(self, joints: np.ndarray, source: str) -> np.ndarray:
        if source == self.joint_set:
            return joints
        try:
            return joints[:, list(_MAPS[(source, self.joint_set)])]
        except KeyError:
            raise ValueError(f"protocol {self.name}: no map from {source} to {self.joint_set}") from None

    def _check_set(self, joints: np.ndarray, set_name: str, what: str) -> None:
        if joints.shape[1] != len(get_joint_set(set_name)):
            raise ValueError(f"protocol {self.name}: {what} must be (N, {len(get_joint_set(set_name))}, 3) "
                             f"in joint set {set_name}, got {joints.shape}")

    def evaluate(self, pred_joints: M.ArrayLike, gt_joints: M.ArrayLike, pred_vertices: Optional[M.ArrayLike] = None,
                 gt_vertices: Optional[M.ArrayLike] = None, with_vertices: bool = True) -> Dict[str, np.ndarray]:
        """Per-sample errors (metres; F-scores as fractions) for the protocol's metrics (``with_vertices``
        False: the joint metrics only)."""
        pred, gt = M.as_points(pred_joints, "pred_joints"), M.as_points(gt_joints, "gt_joints")
        if len(pred) != len(gt):
            raise ValueError(f"protocol {self.name}: {len(pred)} predictions for {len(gt)} GT samples")
        self._check_set(pred, self.input_set, "pred_joints")
        self._check_set(gt, self.gt_input_set, "gt_joints")
        needs_vertices = with_vertices and any(m in self.metrics for m in VERTEX_METRICS)
        if needs_vertices and (pred_vertices is None or gt_vertices is None):
            raise ValueError(f"protocol {self.name} reports {list(self.metrics)}: give pred_vertices and gt_vertices")
        if self.alignment == "freihand_official":
            return M.freihand_errors(pred, gt, pred_vertices if needs_vertices else None,
                                     gt_vertices if needs_vertices else None)
        pred_root = pred[:, self.pelvis_index:self.pelvis_index + 1] if self.pelvis_index is not None else 0.0
        gt_root = (gt[:, self.pelvis_index:self.pelvis_index + 1]
                   if self.pelvis_index is not None and self.gt_from == "mesh" else 0.0)
        pred_e = self._to_eval_set(pred - pred_root, self.input_set)
        gt_e = self._to_eval_set(gt - gt_root, self.gt_input_set)
        out: Dict[str, np.ndarray] = {}
        if "mpjpe" in self.metrics:
            out["mpjpe"] = M.mpjpe(pred_e, gt_e)
        if "pa_mpjpe" in self.metrics:
            out["pa_mpjpe"] = M.pa_mpjpe(pred_e, gt_e)
        if needs_vertices:
            pv, gv = M.as_points(pred_vertices, "pred_vertices"), M.as_points(gt_vertices, "gt_vertices")
            if "pve" in self.metrics:
                out["pve"] = M.pve(pv - pred_root, gv - gt_root)
            if "pa_pve" in self.metrics:
                out["pa_pve"] = M.pa_pve(pv, gv)
        return out

    def requirements(self, metric: str) -> Tuple[str, ...]:
        """The ground truth (keys of :data:`GT_LABELS`) a sample needs to be scored by ``metric``."""
        if self.gt_from_mesh:
            return ("pose", "betas")
        return ("vertices",) if metric in VERTEX_METRICS else ("3d",)

    def score(self, pred_joints: M.ArrayLike, gt_joints: M.ArrayLike, pred_vertices: Optional[M.ArrayLike],
              gt_vertices: Optional[M.ArrayLike], labelled: Mapping[str, np.ndarray],
              also_needs: Iterable[str] = ()) -> Scored:
        """Each metric on the samples labelled for it. ``labelled``: GT name (:data:`GT_LABELS`) -> (N,) bool; a
        missing name (or ``gt_vertices`` None) means no sample has it. ``also_needs``: labels every metric needs
        besides its own (the oracle source predicts from GT pose and shape)."""
        n = len(M.as_points(pred_joints, "pred_joints"))
        out = Scored()
        groups: Dict[Tuple[str, ...], list] = {}
        for metric in self.metrics:
            needs = tuple(dict.fromkeys(self.requirements(metric) + tuple(also_needs)))
            groups.setdefault(needs, []).append(metric)
        for needs, metrics in groups.items():
            mask = np.ones(n, dtype=bool)
            for name in needs:
                have = labelled.get(name)
                if name == "vertices" and gt_vertices is None:
                    have = None
                mask &= np.zeros(n, dtype=bool) if have is None else np.asarray(have, dtype=bool).reshape(n)
            keys = [summary_key(m) for m in metrics]
            if not mask.any():
                reason = "; ".join(f"{GT_LABELS[name][1]} ({GT_LABELS[name][0]}): "
                                   f"{int(np.asarray(labelled[name]).sum()) if name in labelled else 0} of {n}"
                                   for name in needs if name in GT_LABELS)
                out.refused.update({k: f"no sample is labelled for it ({reason} samples)" for k in keys})
                out.per_sample.update({m: np.full(n, np.nan) for m in metrics if not m.startswith("auc")})
                continue
            vertices = any(m in VERTEX_METRICS for m in metrics)
            pick = lambda a: None if a is None or not vertices else np.asarray(a)[mask]  # noqa: E731
            errors = self.evaluate(np.asarray(pred_joints)[mask], np.asarray(gt_joints)[mask], pick(pred_vertices),
                                   pick(gt_vertices), with_vertices=vertices)
            summary = self.summarize(errors)
            for key in keys:
                out.metrics[key], out.counts[key] = summary[key], int(mask.sum())
            for name, values in errors.items():
                if values.ndim == 1 and summary_key(name) in keys:
                    full = np.full(n, np.nan)
                    full[mask] = values
                    out.per_sample[name] = full
        order = [summary_key(m) for m in self.metrics]
        out.metrics = {k: out.metrics[k] for k in order if k in out.metrics}
        out.counts = {k: out.counts[k] for k in order if k in out.counts}
        return out

    def summarize(self, errors: Mapping[str, np.ndarray]) -> Dict[str, float]:
        """Means over samples: distances in ``units`` (mm) with a ``_mm`` suffix, AUC/F as fractions."""
        if self.alignment == "freihand_official":
            return M.summarize_freihand(dict(errors))
        return {f"{k}_mm": 1000.0 * float(np.mean(v)) for k, v in errors.items()}


_BODY_COMMON = dict(kind="body", joint_set="lsp14", alignment="spin_similarity", units="mm")

PROTOCOLS: Dict[str, Protocol] = {p.name: p for p in (
    Protocol(name="3dpw_test", dataset="pw3d", split="test", input_set="h36m17", gt_from="mesh",
             gt_input_set="h36m17", pelvis="J_regressor_h36m joint 0 (pelvis) of each mesh", pelvis_index=0,
             gt_body_model="smpl-{gender}", gt_body_model_fallback="smpl-neutral", pred_body_model="smpl-neutral",
             metrics=("mpjpe", "pa_mpjpe", "pve"),
             notes="SPIN/CLIFF lineage: GT mesh from gendered SMPL (betas[:10], no transl), 14 LSP joints = "
                   "H36M_TO_J14 of J_regressor_h36m @ verts; PVE on pelvis-centred meshes, no rotation alignment.",
             **_BODY_COMMON),
    Protocol(name="h36m_p1", dataset="h36m_p1", split="test", input_set="h36m17", gt_from="file",
             gt_input_set="spin24", pelvis="pred: J_regressor_h36m joint 0; GT: as in the file (pelvis-centred S)",
             pelvis_index=0, gt_body_model="none (GT joints from the file)", gt_body_model_fallback="none",
             pred_body_model="smpl-neutral", metrics=("mpjpe", "pa_mpjpe"),
             notes="SPIN h36m_valid_protocol1.npz: S9, S11, every 5th frame, all cameras; GT = S[:, J24_TO_J14]. "
                   "Papers report MPJPE on P1.", **_BODY_COMMON),
    Protocol(name="h36m_p2", dataset="h36m_p2", split="test", input_set="h36m17", gt_from="file",
             gt_input_set="spin24", pelvis="pred: J_regressor_h36m joint 0; GT: as in the file (pelvis-centred S)",
             pelvis_index=0, gt_body_model="none (GT joints from the file)", gt_body_model_fallback="none",
             pred_body_model="smpl-neutral", metrics=("mpjpe", "pa_mpjpe"),
             notes="SPIN h36m_valid_protocol2.npz: S9, S11, every 5th frame, camera 60457274; "
                   "papers report PA-MPJPE on P2.", **_BODY_COMMON),
    Protocol(name="synth_body_test", dataset="synth_body", split="test", kind="body", joint_set="smpl24",
             input_set="smpl24", gt_from="mesh", gt_input_set="smpl24",
             pelvis="SMPL kinematic joint 0 of each model", pelvis_index=0, gt_body_model="open-smpl",
             gt_body_model_fallback="open-smpl", pred_body_model="open-smpl", alignment="spin_similarity",
             metrics=("mpjpe", "pa_mpjpe", "pve"),
             notes="Project synthetic set: GT mesh from the GT parameters through the same body model; "
                   "not comparable with published 3DPW/H36M numbers."),
    Protocol(name="freihand_eval", dataset="freihand", split="test", kind="hand", joint_set="freihand21",
             input_set="freihand21", gt_from="file", gt_input_set="freihand21", pelvis="none (aligned metrics)",
             pelvis_index=None, gt_body_model="none (GT joints and vertices from the files)",
             gt_body_model_fallback="none", pred_body_model="mano-right", alignment="freihand_official",
             metrics=("pa_mpjpe", "pa_mpvpe", "auc_joints", "auc_vertices", "f@5mm", "f@15mm"),
             notes="FreiHAND official evaluation: per-sample centre + unit-norm scale + orthogonal_procrustes "
                   "(no reflection fix), joints and 778 vertices aligned separately; AUC over 0-50 mm, "
                   "100 thresholds; F-scores on aligned vertices."),
    Protocol(name="synth_hand_eval", dataset="synth_hand", split="test", kind="hand", joint_set="freihand21",
             input_set="freihand21", gt_from="file", gt_input_set="freihand21", pelvis="none (aligned metrics)",
             pelvis_index=None, gt_body_model="none (GT joints and vertices from the files)",
             gt_body_model_fallback="none", pred_body_model="open-mano-right", alignment="freihand_official",
             metrics=("pa_mpjpe", "pa_mpvpe", "auc_joints", "auc_vertices", "f@5mm", "f@15mm"),
             notes="Project synthetic hand set in FreiHAND's layout, scored with FreiHAND's official procedure."),
)}
DATASET_PROTOCOL = {p.dataset: p.name for p in PROTOCOLS.values()}


def get_protocol(name: str, split: Optional[str] = None) -> Protocol:
    """A protocol by name (``3dpw_test``, ``h36m_p1``, ``h36m_p2``, ``freihand_eval``, ...) or by registry dataset
    name (``pw3d`` → ``3dpw_test``); ``split`` given and different from the protocol's gives a copy on that split
    (its name says so, e.g. ``3dpw_test@val``)."""
    if name in PROTOCOLS:
        protocol = PROTOCOLS[name]
    elif name in DATASET_PROTOCOL:
        protocol = PROTOCOLS[DATASET_PROTOCOL[name]]
    else:
        raise KeyError(f"unknown protocol {name!r}; protocols: {sorted(PROTOCOLS)}; "
                       f"datasets with a protocol: {sorted(DATASET_PROTOCOL)}")
    if split is not None and split != protocol.split:
        protocol = replace(protocol, name=f"{protocol.name}@{split}", split=split)
    return protocol


def protocol_for_dataset(dataset: str) -> Protocol:
    """The default protocol of a registry dataset name (``pw3d`` → ``3dpw_test``, ...)."""
    try:
        return PROTOCOLS[DATASET_PROTOCOL[dataset]]
    except KeyError:
        raise KeyError(f"no evaluation protocol for dataset {dataset!r}; datasets with one: "
                       f"{sorted(DATASET_PROTOCOL)}") from None
