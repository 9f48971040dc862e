"""Seed statistics of the image experiments: time-to-accuracy, paired differences and the verdict rule, checked
against hand-computed values and scipy's paired t statistic."""
import math

import numpy as np
import pytest
from scipy import stats

from hmr.experiments.seed_stats import condition_summary, level_reached, mean_std, paired, steps_to, verdict


def _run(seed, finals, label="a", diverged=False):
    history = [{"step": 100 * (i + 1), "pa_mpjpe_mm": v, "train_seconds": 5.0 * (i + 1)} for i, v in enumerate(finals)]
    return {"label": label, "kind": "body", "seed": seed, "history": history, "diverged": diverged,
            "final": {} if diverged else {"pa_mpjpe_mm": finals[-1]}}


def test_level_reached_is_the_first_evaluation_at_or_below_the_target():
    history = _run(0, [150.0, 120.0, 90.0, 95.0])["history"]
    assert level_reached(history, "pa_mpjpe_mm", 120.0) == {"step": 200.0, "seconds": 10.0}
    assert level_reached(history, "pa_mpjpe_mm", 80.0) is None
    assert steps_to({"history": history}, "pa_mpjpe_mm", 80.0) == 500.0  # censored one interval past the end


def test_condition_summary_over_seeds():
    runs = [_run(0, [150.0, 100.0]), _run(1, [130.0, 110.0]), _run(2, [200.0], diverged=True)]
    summary = condition_summary(runs, {"pa_mpjpe_mm": 160.0})
    assert summary["pa_mpjpe_mm"]["mean"] == pytest.approx(105.0)
    assert summary["pa_mpjpe_mm"]["std"] == pytest.approx(np.std([100, 110], ddof=1))
    assert summary["ratio"]["mean"] == pytest.approx(105.0 / 160.0) and summary["diverged"] == 1
    level90 = summary["levels"][0.9]   # 144 mm: seed 1 at step 100, seed 0 at step 200
    assert level90["reached"] == 2 and level90["steps"]["mean"] == pytest.approx(150.0)
    assert summary["levels"][0.7]["reached"] == 2 and summary["levels"][0.7]["steps"]["mean"] == 200.0  # 112 mm
    assert condition_summary(runs, {"pa_mpjpe_mm": 120.0})["levels"][0.7]["reached"] == 0   # 84 mm: never
    assert summary["seconds_per_step"]["mean"] == pytest.approx(0.05)


def test_paired_differences_and_verdicts_agree_with_the_t_statistic():
    a = [_run(s, [v]) for s, v in enumerate((100.0, 101.0, 99.5))]
    b = [_run(s, [v], "b") for s, v in enumerate((104.0, 103.5, 104.5))]
    result = paired(a, b, lambda r: r["final"]["pa_mpjpe_mm"])
    assert result["diffs"] == pytest.approx([-4.0, -2.5, -5.0]) and result["a_better"] == 3
    t = stats.ttest_rel([100.0, 101.0, 99.5], [104.0, 103.5, 104.5]).statistic
    assert abs(t) > 2 and result["verdict"] == "confirmed"
    assert paired(b, a, lambda r: r["final"]["pa_mpjpe_mm"])["verdict"] == "refuted"
    assert verdict([-1.0, -1.0, 0.5]) == "inconclusive"      # one seed disagrees
    assert verdict([-0.1, -5.0, -0.2]) == "inconclusive"     # all negative, but within two standard errors
    assert verdict([-3.0]) == "inconclusive"                 # a single seed never decides
    assert verdict([-3.0, -3.1]) == "inconclusive"           # nor do two
    assert verdict([-0.4, -0.5, -0.45], min_effect=1.0) == "negligible"
    assert verdict([0.4, 0.5, 0.45], min_effect=0.1) == "refuted"
    assert verdict([0.0, 0.0, 0.0], min_effect=100) == "negligible"       # the same evaluation step in every seed
    assert verdict([0.3, -0.2, -0.3], min_effect=1.0) == "negligible"     # every seed within 1 % of the error
    assert verdict([100.0, 0.0, -100.0], min_effect=100) == "inconclusive"  # one interval either way
    assert verdict([0.0, 0.0, 0.0]) == "inconclusive"                     # no resolution given: nothing shown


def test_paired_ignores_seeds_that_one_side_lacks():
    a = [_run(0, [100.0]), _run(1, [100.0])]
    b = [_run(0, [110.0], "b"), _run(1, [0.0], "b", diverged=True)]
    result = paired(a, b, lambda r: r["final"]["pa_mpjpe_mm"])
    assert result["seeds"] == [0] and result["n"] == 1 and math.isnan(result["std"])
    assert mean_std([])["n"] == 0
