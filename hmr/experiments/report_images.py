"""docs/results.md sections of the trainer-based image experiments (issues 8, 9 and 18).

Results of the seeded presets (``settings.version`` >= 2: pretrained landmark read-out, three seeds) get a
condition table (mean ± std over seeds, ratio to the mean pose, time-to-accuracy), paired per-seed comparisons
with verdicts (:mod:`hmr.experiments.seed_stats`) and mean curves against steps and training seconds. Older results
(from-scratch MobileNetV3, one seed) keep their per-run table and are labelled as predating the pretrained presets.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from hmr.experiments.seed_stats import LEVELS, condition_summary, group_runs, paired, steps_to

KEY = "pa_mpjpe_mm"
EXTRA = {"body": ("mpjpe_mm", "pve_mm", "inference_gap_mpjpe_mm", "betas_drift"),
         "hand": ("pa_mpvpe_mm", "inference_gap_pve_mm", "inference_gap_mpjpe_mm", "betas_drift")}
LEGACY_COLUMNS = ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "pa_mpvpe_mm", "inference_gap_mpjpe_mm",
                  "inference_gap_pve_mm", "train_bone_error_mm", "inference_bone_error_mm", "train_sv_min_mean",
                  "train_det_neg_frac")
PLAIN_PROM_ROW = "loss=train,fk=train,inf=inference"
#: Issue 18: a claim counts only where both compared models ended at least 30 % below the mean pose.
LEARNED = 0.70
#: A consistent final-error difference below this fraction of the error is called negligible.
MIN_EFFECT = 0.01


def seeded(result: Mapping[str, Any]) -> bool:
    return int(result.get("settings", {}).get("version", 1)) >= 2


def comparisons(name: str, labels: Sequence[str]) -> List[Tuple[str, str, str]]:
    """(A, B, claim) pairs an experiment tests; differences are A - B (negative: A better)."""
    if name == "convergence":
        return [("prom", other, f"PRoM beats {other}") for other in labels if other != "prom"]
    if name == "lr":
        rates = sorted({label.split("lr=")[1] for label in labels}, key=float)
        return [(f"prom/lr={lr}", f"{other}/lr={lr}", f"PRoM beats {other} at lr {lr}")
                for lr in rates for other in ("6d", "svd9d") if f"{other}/lr={lr}" in labels]
    if name == "orthogonalization":
        return [(PLAIN_PROM_ROW, other, f"raw everywhere beats {other}") for other in labels if other != PLAIN_PROM_ROW]
    if name == "prom-gap-images":
        return [(fix, "prom", f"{fix} beats plain PRoM") for fix in labels if fix != "prom"]
    return []


def _ms(stat: Mapping[str, float], digits: int = 1) -> str:
    if not stat or not stat.get("n"):
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    return text + (f" ± {stat['std']:.{digits}f}" if stat["n"] > 1 else "")


def _levels(summary: Mapping[str, Any]) -> str:
    cells = []
    for level in LEVELS:
        entry = summary["levels"][level]
        if not entry["of"]:
            return "– (no training curve)"
        steps = f"{entry['steps']['mean']:.0f}" if entry["reached"] else "never"
        cells.append(steps + ("" if entry["reached"] == entry["of"] else f" ({entry['reached']}/{entry['of']})"))
    return " / ".join(cells)


def condition_rows(result: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Per (set, condition): its :func:`condition_summary` (JSON-ready for the claims table)."""
    baselines = result.get("baselines") or {}
    rows = []
    for (kind, label), runs in group_runs(result["runs"]).items():
        summary = condition_summary(runs, baselines.get(kind) or {}, KEY, EXTRA.get(kind, ()))
        rows.append({"kind": kind, "label": label, **summary})
    return rows


def paired_rows(name: str, result: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The experiment's comparisons per set: final error and steps to 75 % of the mean pose, paired by seed."""
    groups = group_runs(result["runs"])
    baselines = result.get("baselines") or {}
    rows = []
    for kind in sorted({k for k, _ in groups}):
        labels = [label for k, label in groups if k == kind]
        target = 0.75 * (baselines.get(kind) or {}).get(KEY, np.nan)
        for a, b, claim in comparisons(name, labels):
            if (kind, a) not in groups or (kind, b) not in groups:
                continue
            reference = np.mean([r["final"][KEY] for r in groups[kind, b] if KEY in (r.get("final") or {})] or [0.0])
            interval = float((result.get("settings") or {}).get("eval_every", 0))
            final = paired(groups[kind, a], groups[kind, b], lambda r: r["final"].get(KEY, np.nan),
                           min_effect=MIN_EFFECT * reference)
            absolute = None  # MPJPE (no Procrustes) where the set has it: PRoM's train/inference gap shows there
            if any("mpjpe_mm" in (r.get("final") or {}) for r in groups[kind, b]):
                mpjpe = np.mean([r["final"]["mpjpe_mm"] for r in groups[kind, b] if "mpjpe_mm" in r["final"]])
                absolute = paired(groups[kind, a], groups[kind, b], lambda r: r["final"].get("mpjpe_mm", np.nan),
                                  min_effect=MIN_EFFECT * mpjpe)
            speed = paired(groups[kind, a], groups[kind, b], lambda r: steps_to(r, KEY, target), min_effect=interval)
            worst = max((np.mean([r["final"][KEY] for r in groups[kind, label] if KEY in (r.get("final") or {})]
                                 or [np.inf]) for label in (a, b)))
            rows.append({"kind": kind, "a": a, "b": b, "claim": claim, "final": final, "mpjpe": absolute,
                         "steps_to_75": speed,
                         "worst_ratio": float(worst / (baselines.get(kind) or {}).get(KEY, np.nan))})
    return rows


def _diffs(stat: Mapping[str, Any], digits: int = 1) -> str:
    if not stat["diffs"]:
        return "–"
    return ", ".join(f"{d:+.{digits}f}" for d in stat["diffs"]) + f" (mean {stat['mean']:+.{digits}f})"


def seeded_section(name: str, result: Mapping[str, Any], figures: Path) -> str:
    """Condition table, paired comparisons and mean curves of a seeded result."""
    s = result["settings"]
    lines = [f"## {name} (issue 18: pretrained landmark read-out, {len(s['seeds'])} seeds)", "",
             f"{s['steps']} steps, evaluated every {s['eval_every']} on the first {s['eval_samples']} test images; "
             f"seeds {s['seeds']}; overrides `{' '.join(s['extra'])}`; models `{json.dumps(s.get('model'))}`.", "",
             "| set | condition | PA-MPJPE (mm) | × mean pose | other metrics (mm) | steps to "
             f"{' / '.join(f'{100 * level:.0f}' for level in LEVELS)} % of the mean pose | s to 75 % | ms/step | "
             "diverged / not run |", "|---" * 9 + "|"]
    for row in condition_rows(result):
        others = "; ".join(f"{k.replace('_mm', '')} {_ms(row[k])}" for k in EXTRA.get(row["kind"], ()) if row[k]["n"])
        level = row["levels"][0.75]
        seconds = _ms(level["seconds"], 0) if level["reached"] else ("never" if level["of"] else "–")
        per_step = row["seconds_per_step"]
        ms = {"mean": per_step["mean"] * 1e3, "std": per_step["std"] * 1e3, "n": per_step["n"]}
        lines.append(f"| {row['kind']} | {row['label']} | {_ms(row[KEY])} | {_ms(row['ratio'], 3)} | {others} | "
                     f"{_levels(row)} | {seconds} | {_ms(ms)} | {row['diverged']} / {row['not_run']} |")
    for kind, metrics in sorted((result.get("baselines") or {}).items()):
        lines.append(f"| {kind} | mean pose (baseline) | {metrics.get(KEY, float('nan')):.1f} | 1 | | | | | |")
    pairs = paired_rows(name, result)
    if pairs:
        lines += ["", "Paired by seed (A − B; negative: A better): final PA-MPJPE (mm) and steps to 75 % of the "
                  "mean-pose error (a run that never gets there counts one evaluation past its end).", "",
                  "| set | A vs B | Δ PA-MPJPE per seed | A better | verdict | Δ MPJPE per seed | verdict | "
                  "Δ steps to 75 % per seed | verdict |", "|---" * 9 + "|"]
        for p in pairs:
            f, m, t = p["final"], p["mpjpe"], p["steps_to_75"]
            absolute = f"{_diffs(m)} | {m['verdict']}" if m else "– | –"
            lines.append(f"| {p['kind']} | {p['a']} vs {p['b']} | {_diffs(f)} | {f['a_better']}/{f['n']} | "
                         f"{f['verdict']} | {absolute} | {_diffs(t, 0)} | {t['verdict'] if t['n'] else '–'} |")
    curves = _curves(name, result, figures)
    if curves:
        lines += ["", f"![{name}]({curves}) Mean over seeds (band: min–max); dashed: the mean pose."]
    return "\n".join(lines + [""])


def _speed(stat: Mapping[str, Any]) -> str:
    """The claims table's time-to-accuracy cells ('–' for a condition without a training curve, e.g. a refit)."""
    if not stat["n"]:
        return "– | –"
    return f"{_ms(stat, 0)} ({stat['a_better']}/{stat['n']}) | {stat['verdict']}"


def _curves(name: str, result: Mapping[str, Any], figures: Path) -> str:
    """Error against steps (top) and training seconds (bottom) per set, mean over seeds; '' when nothing to plot."""
    from hmr.experiments.report import _plt, _savefig
    groups = group_runs(result["runs"])
    kinds = sorted({k for k, _ in groups})
    plt = _plt()
    fig, axes = plt.subplots(2, len(kinds), figsize=(5.5 * len(kinds), 6.4), squeeze=False)
    plotted = False
    for col, kind in enumerate(kinds):
        base = ((result.get("baselines") or {}).get(kind) or {}).get(KEY)
        for (k, label), runs in groups.items():
            hists = [r["history"] for r in runs if r.get("history") and not r.get("diverged")]
            if k != kind or not hists:
                continue
            length = min(len(h) for h in hists)
            values = np.array([[h[i].get(KEY, np.nan) for i in range(length)] for h in hists])
            steps = [hists[0][i]["step"] for i in range(length)]
            seconds = np.nanmean([[h[i].get("train_seconds", np.nan) for i in range(length)] for h in hists], axis=0)
            for row, x in ((0, steps), (1, seconds)):
                ax = axes[row][col]
                line, = ax.plot(x, values.mean(0), label=label, linewidth=1)
                ax.fill_between(x, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
            plotted = True
        for row, xlabel in ((0, "step"), (1, "training seconds (1 core)")):
            ax = axes[row][col]
            if base:
                ax.axhline(base, linestyle="--", color="grey", linewidth=0.8)
                ax.set_ylim(0.6 * base, 1.1 * base)
            ax.set_title(kind, fontsize=9)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("PA-MPJPE (mm)")
            ax.legend(fontsize=6)
    if not plotted:
        plt.close(fig)
        return ""
    fig.tight_layout()
    _savefig(fig, figures / f"{name}_curves.png")
    return f"figures/{name}_curves.png"


def legacy_section(name: str, result: Dict[str, Any], figures: Path) -> str:
    """Per-run table of a result that predates the pretrained presets (one seed, from-scratch backbone)."""
    from hmr.experiments.report import _plt, _savefig
    issue = "issue 9, the image half of prom-gap" if name == "prom-gap-images" else "issue 8"
    lines = [f"## {name} ({issue}, synthetic images, trainer)", "",
             "**Predates the pretrained presets** (from-scratch MobileNetV3-small, one seed, models within ~5 % of the "
             "mean pose): not evidence for or against any claim; rerun with `--preset cpu`.", "",
             f"Settings: `{json.dumps(result['settings'])}`.", ""]
    runs = result["runs"]
    baselines = result.get("baselines") or {}
    present = ({k for r in runs for k in (r.get("final") or {})}
               | {k for metrics in baselines.values() for k in metrics})
    keys = [k for k in LEGACY_COLUMNS if k in present]
    lines += ["| run | set | seed | " + " | ".join(keys) + " | skipped | diverged |",
              "|---" * (len(keys) + 5) + "|"]
    for r in runs:
        if r.get("not_run"):
            lines.append(f"| {r['label']} | {r['kind']} | {r['seed']} | " + " | ".join("not run" for _ in keys)
                         + " | – | – |")
            continue
        cells = [(f"{r['final'][k]:.3f}" if k.startswith("train_sv") or k.endswith("_frac") else
                  f"{r['final'][k]:.1f}") if k in (r.get("final") or {}) else "–" for k in keys]
        lines.append(f"| {r['label']} | {r['kind']} | {r['seed']} | " + " | ".join(cells)
                     + f" | {r.get('skipped_steps', '–')} | {r.get('diverged', False)} |")
    for kind, metrics in sorted(baselines.items()):
        cells = [f"{metrics[k]:.1f}" if k in metrics else "–" for k in keys]
        lines.append(f"| mean pose (baseline) | {kind} | – | " + " | ".join(cells) + " | – | – |")
    plt = _plt()
    kinds = sorted({r["kind"] for r in runs})
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.4), squeeze=False)
    panels = dict(zip(kinds, axes[0]))
    plotted = False
    for r in runs:
        hist = r.get("history") or []
        key = next((k for k in ("pa_mpjpe_mm", "mpjpe_mm") if hist and k in hist[0]), None)
        if key:
            panels[r["kind"]].plot([h["step"] for h in hist], [h[key] for h in hist], label=r["label"])
            panels[r["kind"]].set_ylabel(key)
            plotted = True
    if not plotted:
        plt.close(fig)
        return "\n".join(lines + [""])
    for kind, ax in panels.items():
        base = (baselines.get(kind) or {}).get("pa_mpjpe_mm")
        if base:
            ax.axhline(base, linestyle="--", color="grey", linewidth=0.8)
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    _savefig(fig, figures / f"{name}_curves.png")
    return "\n".join(lines + ["", f"![{name}](figures/{name}_curves.png)", ""])


def image_section(name: str, result: Dict[str, Any], figures: Path) -> str:
    """The section of one image experiment's result (seeded or legacy)."""
    return seeded_section(name, result, figures) if seeded(result) else legacy_section(name, result, figures)


def claims_section(found: Mapping[str, Mapping[str, Any]]) -> str:
    """One table of every paired claim of the seeded image experiments: verdicts on final error and speed."""
    lines = ["## Claims on images, by seed (issue 18)", "",
             "Every paired comparison of the seeded image experiments below, on the final PA-MPJPE and on the "
             "steps to 75 % of the mean-pose error. Verdict rule (`hmr/experiments/seed_stats.py`): three seeds, "
             "every seed the same way and the mean more than two standard errors from zero — *confirmed* / "
             "*refuted*; *negligible* when that holds but the mean is below 1 % of the error (final) or one "
             "evaluation interval (steps), or when every seed's own difference is that small; else *inconclusive*.", "",
             "The last column is the worse of the two conditions' mean final error over the mean pose's: issue 18 "
             f"counts a claim only where both ended at least 30 % below it (≤ {LEARNED}).", "",
             "| experiment | set | claim | Δ PA-MPJPE (mm), mean ± std | PA: verdict | Δ MPJPE (mm) | MPJPE: verdict | "
             "Δ steps to 75 % | speed: verdict | × mean pose (worse) |", "|---" * 10 + "|"]
    count = 0
    for name, result in found.items():
        if "runs" not in result or not seeded(result):
            continue
        for p in paired_rows(name, result):
            f, m, t = p["final"], p["mpjpe"], p["steps_to_75"]
            absolute = f"{_ms(m)} ({m['a_better']}/{m['n']}) | {m['verdict']}" if m else "– | –"
            lines.append(f"| {name} | {p['kind']} | {p['claim']} | {_ms(f)} ({f['a_better']}/{f['n']}) | "
                         f"{f['verdict']} | {absolute} | {_speed(t)} | "
                         f"{p['worst_ratio']:.3f}{'' if p['worst_ratio'] <= LEARNED else ' (not learned)'} |")
            count += 1
    return "\n".join(lines + [""]) if count else ""
