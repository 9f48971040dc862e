"""``tools/experiment.py report``: regenerate docs/results.md (tables) and docs/figures/*.png (plots) from the
raw result JSON files (``<root>/<name>/<preset>.json``). Results read from outside ``<docs>/results`` are
copied there, so the report can be rebuilt from the repository alone."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from hmr.experiments import registry
from hmr.experiments.report_images import claims_section, image_section
from hmr.utils.io import atomic_open, write_json, write_text

log = logging.getLogger(__name__)
PRESET_ORDER = ("full", "cpu", "tiny")  # the report shows the most complete preset available


def find_results(roots: Sequence[Path]) -> Dict[str, Dict[str, Any]]:
    """{experiment name: result dict} — per name the first preset of PRESET_ORDER found; later roots win."""
    found: Dict[str, Dict[str, Any]] = {}
    for name in registry.names():
        for preset in PRESET_ORDER:
            hits = [registry.result_path(r, name, preset) for r in roots]
            hits = [h for h in hits if h.is_file()]
            if hits:
                found[name] = json.loads(hits[-1].read_text())
                found[name]["_path"] = str(hits[-1])
                break
    return found


def _ms(values: Sequence[float], digits: int = 1) -> str:
    """mean ± std over seeds (just the mean for one seed)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return "–"
    return f"{v.mean():.{digits}f}" + (f" ± {v.std(ddof=1):.{digits}f}" if v.size > 1 else "")


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def early_error(history: List[Dict[str, float]], fraction: float = 0.125) -> float:
    """Inference MPJPE at the first logged step ≥ fraction of training (PRoM's "fast start")."""
    last = history[-1]["step"]
    return next(h["mpjpe"] for h in history if h["step"] >= fraction * last)


# ------------------------------------------------------------------ prom-gap
PROM_GAP_COLUMNS = [("mpjpe_mm", "MPJPE"), ("pa_mpjpe_mm", "PA-MPJPE"), ("pve_mm", "PVE"),
                    ("train_mpjpe_mm", "train-mesh MPJPE"),
                    ("inference_gap_mpjpe_mm", "gap MPJPE"), ("inference_gap_pve_mm", "gap PVE"),
                    ("train_bone_error_mm", "train bone err"), ("train_sv_min_mean", "mean s3"),
                    ("train_det_neg_frac", "det<0")]


def prom_gap_rows(result: Dict[str, Any], condition: str) -> List[Dict[str, Any]]:
    """Per variant (plus prom+refit) the seed lists of each metric and the early error."""
    rows = []
    variants = list(result["variants"])
    for variant in variants + ["prom+refit"]:
        source = "prom" if variant == "prom+refit" else variant
        runs = [r for r in result["runs"] if r["variant"] == source and r["condition"] == condition]
        if not runs:
            continue
        m = [r["final"]["metrics"] for r in runs]
        row: Dict[str, Any] = {"variant": variant}
        for key, _ in PROM_GAP_COLUMNS:
            vals = [x.get(key) for x in m]
            if variant == "prom+refit":
                refit_key = {"mpjpe_mm": "refit_mpjpe_mm", "pve_mm": "refit_pve_mm",
                             "inference_gap_mpjpe_mm": "refit_gap_mpjpe_mm",
                             "inference_gap_pve_mm": "refit_gap_pve_mm"}.get(key)
                vals = [x.get(refit_key) for x in m] if refit_key else [None] * len(m)
            row[key] = vals
        row["early"] = [early_error(r["history"]) for r in runs]
        row["betas_drift"] = [x.get("refit_betas_drift") for x in m] if variant == "prom+refit" else [None]
        row["runs"] = runs
        rows.append(row)
    return rows


def goal_statement(rows: List[Dict[str, Any]]) -> str:
    """Issue 9's goal, checked: a PRoM variant with prom's early speed (early error ≤ prom's + 5 %), final
    MPJPE ≤ the best of 6d / svd9d (+ 1 mm tolerance for seed noise) and gap PVE < 5 mm."""
    by = {r["variant"]: r for r in rows}
    def mean(row: Dict[str, Any], key: str) -> float:
        vals = [x for x in row[key] if x is not None and np.isfinite(x)]
        return float(np.mean(vals)) if vals else float("nan")
    if "prom" not in by or not {"6d", "svd9d"} & set(by):
        return "not enough variants to check the goal"
    best_baseline = min(mean(by[v], "mpjpe_mm") for v in ("6d", "svd9d") if v in by)
    prom_early = mean(by["prom"], "early")
    baseline_early = ", ".join(f"{v} {mean(by[v], 'early'):.1f}" for v in ("6d", "svd9d") if v in by)
    verdicts = [f"(early MPJPE: prom {prom_early:.1f} mm vs {baseline_early})"]
    for name, r in by.items():
        if not name.startswith("prom"):
            continue
        fast = mean(r, "early") <= 1.05 * prom_early if name != "prom+refit" else True
        accurate = mean(r, "mpjpe_mm") <= best_baseline + 1.0
        small_gap = mean(r, "inference_gap_pve_mm") < 5.0
        ok = fast and accurate and small_gap
        verdicts.append(f"{name}: {'MEETS' if ok else 'misses'} (early {'ok' if fast else 'slower'}, "
                        f"MPJPE {mean(r, 'mpjpe_mm'):.1f} vs best baseline {best_baseline:.1f}, "
                        f"gap PVE {mean(r, 'inference_gap_pve_mm'):.1f} mm)")
    return "; ".join(verdicts)


def _panel_grid(plt, count: int, height: float, per_row: int = 4):
    """A figure with ``count`` panels, at most ``per_row`` per row; returns (figure, flat list of axes)."""
    cols = min(count, per_row)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, height * rows), squeeze=False)
    flat = list(axes.reshape(-1))
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def prom_gap_section(result: Dict[str, Any], figures: Path) -> str:
    lines = ["## prom-gap (issue 9): the train/inference gap on the keypoint-lifting test bed", "",
             f"Task: {result['task']}; poses from the synthetic pose prior, betas ~ N(0,1). Settings: "
             f"`{json.dumps(result['settings'])}`. Metrics on {result['settings']['test_size']} held-out poses, "
             "mm, the model's kinematic joints / vertices, root-aligned (pelvis, wrist); mean ± std over seeds "
             f"{result['settings']['seeds']}. *gap* = training-time mesh vs exported (SVD) mesh of the same "
             "prediction; *early* = inference MPJPE at 1/8 of training; *mean s3* = mean signed smallest "
             "singular value of the training matrices; *train-mesh MPJPE* = error of the training-time skeleton "
             "(what the losses saw). Variants: "
             + ", ".join(f"`{k}` {json.dumps(v)}" for k, v in result["variants"].items())
             + "; `prom+refit` = the prom model with the inference-time consistency refit (betas + translation).",
             ""]
    plt = _plt()
    conditions = result["conditions"]
    fig, axes = _panel_grid(plt, len(conditions), 3.4)
    for ax, condition in zip(axes, conditions):
        rows = prom_gap_rows(result, condition)
        lines += [f"### {condition}", "",
                  "| variant | " + " | ".join(t for _, t in PROM_GAP_COLUMNS) + " | early | refit Δβ |",
                  "|---" * (len(PROM_GAP_COLUMNS) + 3) + "|"]
        for row in rows:
            digits = {"train_sv_min_mean": 3, "train_det_neg_frac": 3}
            cells = [_ms(row[k], digits.get(k, 1)) for k, _ in PROM_GAP_COLUMNS]
            early = _ms(row["early"]) if row["variant"] != "prom+refit" else "–"
            lines.append(f"| {row['variant']} | " + " | ".join(cells) + f" | {early} | {_ms(row['betas_drift'], 2)} |")
            if row["variant"] != "prom+refit":
                hist = [r["history"] for r in row["runs"]]
                steps = [h["step"] for h in hist[0]]
                curve = np.mean([[h["mpjpe"] for h in hh] for hh in hist], axis=0)
                ax.plot(steps, curve, label=row["variant"])
        lines += ["", f"Goal check: {goal_statement(rows)}", ""]
        ax.set_title(condition, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("inference MPJPE (mm, val)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    _savefig(fig, figures / "prom_gap_curves.png")
    lines += ["![error vs steps](figures/prom_gap_curves.png)", ""]
    # scale per chain depth
    fig, axes = _panel_grid(plt, len(conditions), 3.2)
    for ax, condition in zip(axes, conditions):
        for variant in ("prom", "prom+ortho", "prom+scale_free"):
            runs = [r for r in result["runs"] if r["variant"] == variant and r["condition"] == condition]
            if runs:
                ax.plot(np.mean([r["final"]["per_depth"]["world_scale"] for r in runs], axis=0), "o-",
                        label=f"{variant} world |det|^1/3")
                ax.plot(np.mean([r["final"]["per_depth"]["train_bone_ratio"] for r in runs], axis=0), "x--",
                        label=f"{variant} bone ratio")
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_title(condition, fontsize=9)
        ax.set_xlabel("kinematic-chain depth")
        ax.legend(fontsize=6)
    _savefig(fig, figures / "prom_gap_depth_scale.png")
    lines += ["Scale of the training-time world matrices and training-skeleton bone-length ratio (pred/GT) per "
              "kinematic-chain depth:", "", "![scale per depth](figures/prom_gap_depth_scale.png)", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ rotation tasks
def gradients_section(result: Dict[str, Any], figures: Path, results_dir: Path) -> str:
    lines = ["## gradients (issue 8.6): Jacobian spectra, Procrustes conditioning, gradient ambiguity", ""]
    spectra = result.get("mapping_spectra_near_rotations", {})
    if spectra:
        lines += ["Training-map Jacobians at R + N(0, 0.1²) (autograd): rank and condition number (median / p99), "
                  "λ_min(BBᵀ) median (PRoM Theorem 2).", "",
                  "| map | dim | ranks | cond median | cond p99 | λ_min median |", "|---|---|---|---|---|---|"]
        for name, s in spectra.items():
            lines.append(f"| {name} | {s['dim']} | {s['rank_values']} | {s['condition']['median']:.3g} | "
                         f"{s['condition']['p99']:.3g} | {s['lambda_min_BBt']['median']:.3g} |")
        lines.append("")
    amb = result.get("gradient_ambiguity", {})
    if amb:
        lines += ["Gradient ambiguity (PRoM Fig. 2): fraction of samples whose dL/dt11 has the opposite sign of "
                  "t11 − r11.", "", "| σ | " + " | ".join(next(iter(amb.values()))) + " |",
                  "|---" * (1 + len(next(iter(amb.values())))) + "|"]
        for sigma, per in amb.items():
            lines.append(f"| {sigma} | " + " | ".join(f"{100 * v['frac_sign_flipped']:.1f}%" for v in per.values())
                         + " |")
        lines.append("")
    for fig_path in result.get("figures", []):
        src = Path(fig_path)
        for candidate in (src, results_dir / "gradients" / src.name):
            if candidate.is_file():
                figures.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(candidate, figures / f"gradients_{src.name}")
                (results_dir / "gradients").mkdir(parents=True, exist_ok=True)
                if candidate != results_dir / "gradients" / src.name:
                    shutil.copyfile(candidate, results_dir / "gradients" / src.name)
                lines += [f"![{src.stem}](figures/gradients_{src.name})", ""]
                break
    over = result.get("condition_over_training", [])
    if over:
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for run in over:
            label = f"{run['head']}, rot loss {run['rotation_loss']:g}"
            steps = [h["step"] for h in run["history"]]
            axes[0].plot(steps, [h["proj_cond_p95"] for h in run["history"]], label=label)
            axes[1].plot(steps, [h["det_neg_frac"] for h in run["history"]], label=label)
        axes[0].set_yscale("log")
        axes[0].set_ylabel("Procrustes condition p95")
        axes[1].set_ylabel("fraction det < 0")
        for ax in axes:
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
        _savefig(fig, figures / "gradients_condition_over_training.png")
        lines += ["Raw PRoM predictions over training (lifting test bed, val poses): Procrustes condition number "
                  "(p95, signed s3) and the det < 0 fraction:", "",
                  "![condition over training](figures/gradients_condition_over_training.png)", "",
                  "| head, rotation loss | det<0 at step 0 | det<0 final | cond p95 at step 0 | cond p95 final |",
                  "|---|---|---|---|---|"]
        for run in over:
            h0, h1 = run["history"][0], run["history"][-1]
            lines.append(f"| {run['head']}, {run['rotation_loss']:g} | {h0['det_neg_frac']:.3f} | "
                         f"{h1['det_neg_frac']:.3f} | {h0['proj_cond_p95']:.3g} | {h1['proj_cond_p95']:.3g} |")
        lines.append("")
    return "\n".join(lines)


def recovery_section(result: Dict[str, Any]) -> str:
    from hmr.rotations.benchmark import PUBLISHED
    lines = ["## rotation-recovery (issue 8.7; Zhou 2019 / PRoM Table 2a)", "",
             f"Settings: `{json.dumps(result['settings'])}` (uniform random rotations, MLP 9-128-128-128-dim, "
             "hmr.rotations.benchmark). Geodesic error in degrees.", "",
             "| representation | mean | median | max | std | published mean/max/std | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(result["rows"], key=lambda r: r["mean_deg"]):
        pub = PUBLISHED.get(r["representation"])
        lines.append(f"| {r['representation']} | {r['mean_deg']:.3f} | {r['median_deg']:.3f} | {r['max_deg']:.2f} | "
                     f"{r['std_deg']:.3f} | {'/'.join(f'{v:.2f}' for v in pub) if pub else '–'} | "
                     f"{r['train_seconds']:.0f} |")
    ranking = " < ".join(r["representation"] for r in sorted(result["rows"], key=lambda r: r["mean_deg"]))
    return "\n".join(lines + ["", f"Ranking by mean error: {ranking}.", ""])


def point_cloud_section(result: Dict[str, Any]) -> str:
    lines = ["## point-cloud (issue 8.7): rotation from a point cloud of the open body / hand mesh", "",
             f"Settings: `{json.dumps(result['settings'])}`. Geodesic error of the inference rotation, degrees. "
             "The body template is nearly left-right symmetric, so some rotations are close to indistinguishable "
             "from a point cloud (max errors near 180°); read the body rows as a ranking, the hand rows as "
             "the cleaner test.", "",
             "| object | representation | mean | median | max | train s |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['object']} | {r['representation']} | {r['mean_deg']:.2f} | {r['median_deg']:.2f} | "
                     f"{r['max_deg']:.1f} | {r['train_seconds']:.0f} |")
    for obj in dict.fromkeys(r["object"] for r in result["rows"]):
        rows = sorted((r for r in result["rows"] if r["object"] == obj), key=lambda r: r["mean_deg"])
        lines.append(f"\nRanking on {obj} by mean error: " + " < ".join(r["representation"] for r in rows) + ".")
    return "\n".join(lines + [""])


# ------------------------------------------------------------------ the document
HEADER = """# Results

Generated by `python tools/experiment.py report` from the raw JSON under `docs/results/` (copied there from
`outputs/experiments/`); do not edit by hand — edit `hmr/experiments/report.py` or rerun the experiments.

Machine: each section ends with the machine and torch version it ran on; the cpu numbers below come from a shared
2-core x86_64 box with other jobs running (timings are noisy; accuracy numbers are deterministic per seed).

The fixes for PRoM's train/inference gap, their trade-offs and a reading of these numbers: `docs/prom_gap.md`.

Commands (each writes `outputs/experiments/NAME/PRESET.json`; `--preset full` for a GPU machine, `--preset
tiny` for tests):

```bash
python tools/experiment.py prom-gap --preset cpu --threads 1
python tools/experiment.py rotation-recovery --preset cpu --threads 1
python tools/experiment.py gradients --preset cpu --threads 1
python tools/experiment.py point-cloud --preset cpu --threads 1
python tools/make_synthetic.py --config configs/synthetic/quick.yaml     # once, for the image experiments
# image experiments (issue 18: pretrained landmark read-out, three seeds; ~3.5 min per body run, ~4 per hand
# run on one core, features cached once per set): two invocations share the grid on a 2-core CPU; the four
# experiments are 114 distinct runs (~7 CPU-hours), each experiment and set a part whose runs accumulate
python tools/experiment.py convergence --preset cpu --threads 1 --kinds body &
python tools/experiment.py convergence --preset cpu --threads 1 --kinds hand
python tools/experiment.py convergence --preset cpu --collect-only       # gather both halves into one JSON
# the same for lr, orthogonalization, prom-gap-images (downstream-only, raw-fk: body only)
python tools/experiment.py report
```
"""


def write_report(roots: Sequence[Path], docs: Path) -> Path:
    """Regenerate ``docs/results.md`` and ``docs/figures/``; returns the markdown path."""
    docs = Path(docs)
    results_dir, figures = docs / "results", docs / "figures"
    found = find_results(list(roots))
    sections = [HEADER, claims_section(found)]
    for name, result in found.items():
        src = Path(result.pop("_path"))
        dst = registry.result_path(results_dir, name, result["preset"])
        if src.resolve() != dst.resolve():
            write_json(dst, result)
        m = result.get("machine", {})
        run_total = sum(float(r.get("seconds") or 0.0) for r in result.get("runs", []))
        stamp = (f"*{name}: preset `{result['preset']}`, {result.get('wall_seconds', 0) / 60:.1f} min wall (last "
                 f"invocation{f'; runs total {run_total / 60:.1f} min' if run_total else ''}) on "
                 f"{m.get('processor')} ({m.get('cpu_count')} cores, torch {m.get('torch')}, "
                 f"{m.get('torch_threads')} thread(s){', ' + m['cuda'] if m.get('cuda') else ''}), "
                 f"finished {result.get('finished')}.*")
        if name == "prom-gap":
            body = prom_gap_section(result, figures)
        elif name == "gradients":
            body = gradients_section(result, figures, results_dir)
        elif name == "rotation-recovery":
            body = recovery_section(result)
        elif name == "point-cloud":
            body = point_cloud_section(result)
        else:
            body = image_section(name, result, figures)
        sections.append(body + "\n" + stamp + "\n")
    missing = [n for n in registry.names() if n not in found]
    if missing:
        sections.append("## Not run yet\n\n" + "\n".join(
            f"- `{n}`: `python tools/experiment.py {n} --preset cpu`" for n in missing) + "\n")
    path = docs / "results.md"
    write_text(path, "\n".join(sections))
    return path
