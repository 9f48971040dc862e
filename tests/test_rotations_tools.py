"""End-to-end runs of tools/analyze_gradients.py and tools/bench_rotations.py on tiny inputs."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_analyze_gradients_cli(tmp_path):
    proc = run("tools/analyze_gradients.py", "--out", str(tmp_path), "--n", "60")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "gradients.json").read_text())
    assert report["closed_form_checks"]["procrustes_max_rel_error_det_neg"] < 1e-8
    assert report["gradient_ambiguity"]["0.1"]["prom"]["frac_sign_flipped"] == 0.0
    for name in report["figures"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "sign-flipped" in proc.stdout


def test_bench_rotations_cli_tiny(tmp_path):
    proc = run("tools/bench_rotations.py", "--preset", "tiny", "--representations", "prom", "sexp_quat",
               "--speed-batches", "16", "--speed-repeats", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "bench_rotations.json").read_text())
    assert [r["representation"] for r in report["recovery"]] == ["prom", "sexp_quat"]
    assert all(0 <= r["mean_deg"] <= 180 for r in report["recovery"])
    assert {r["mode"] for r in report["speed"]} == {"fwd", "fwd+bwd"}
    assert all(r["max_dev_ours"] < 1e-5 for r in report["speed"])
    assert "| prom |" in (tmp_path / "bench_rotations.md").read_text()


def run_in_process(script: str, argv: list[str], capsys) -> tuple[int, str]:
    """Error paths in-process (no interpreter start-up): returns (exit code, stderr)."""
    import runpy

    old = sys.argv
    sys.argv = [script, *argv]
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def test_cli_errors(tmp_path, capsys):
    code, err = run_in_process("tools/bench_rotations.py", ["--representations", "rotor", "--out", str(tmp_path)],
                               capsys)
    assert code != 0 and "unknown representations" in err
    code, err = run_in_process("tools/analyze_gradients.py", ["--out", str(tmp_path), "--n", "3"], capsys)
    assert code != 0 and "--n" in err
    assert not (tmp_path / "gradients.json").exists()
