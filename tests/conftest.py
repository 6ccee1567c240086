"""Shared fixtures: one DigitShift cache per test session, the repository root, a CLI runner, and one
uninterrupted reference run that the interruption tests compare against."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def augkd_cache(tmp_path_factory):
    "Keep the tests' dataset and teacher cache out of the user's cache directory."
    path = os.environ.get("AUGKD_TEST_CACHE") or str(tmp_path_factory.mktemp("augkd-cache"))
    os.environ["AUGKD_CACHE"] = path
    os.environ.setdefault("AUGKD_REDUCER", "pca")  # UMAP compiles for 10-20 s in every new process
    return Path(path)


@pytest.fixture
def cli(tmp_path):
    "Run the installed `augkd` console script in `tmp_path`; returns the CompletedProcess."
    def run(*args, timeout=300):
        return subprocess.run(["augkd", *map(str, args)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=os.environ.copy())
    return run


QUICK = ["--preset", "quick", "--seed", "0", "--report", "false"]  # tests that look at report.html ask for it
LONGER = QUICK + ["--anchor-epochs", "4", "--mixup-epochs", "5"]  # stages long enough to be killed inside


def metrics(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


def figures(run_dir):
    "What must agree between two runs of the same config: accuracies and every per-epoch metric."
    results = json.loads((run_dir / "results.json").read_text())
    return {"teacher": results["teacher"], "student": results["student"], "metrics": metrics(run_dir)}


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory, augkd_cache):
    "The figures of an uninterrupted LONGER run."
    run = tmp_path_factory.mktemp("reference") / "run"
    done = subprocess.run(["augkd", "run", *LONGER, "--out", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return figures(run)


def in_process(*args) -> tuple:
    "Run the `augkd` command line in this process (no interpreter start-up): its exit status and what it wrote to stderr."
    import contextlib, io
    from augkd.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, err.getvalue()
