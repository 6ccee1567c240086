"""Shared fixtures: one DigitShift cache per test session, the repository root, a CLI runner, and one
uninterrupted reference run that the interruption tests compare against."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The slowest tests (45 s or more each in a full run on a 2-core CPU, 2026-12-07): `pytest tests` leaves them out so
# CI stays near its budget; `AUGKD_SLOW_TESTS=1 pytest tests` runs them too.
SLOW = {"test_recipe.py::test_changing_the_recipe_changes_every_methods_student_training_alike",
        "test_browser.py::test_a_run_opens_by_the_same_relative_path_from_nbs_and_from_the_root",
        "test_browser.py::test_a_live_view_updates_while_a_run_trains",
        "test_browser.py::test_the_browser_benchmark_runs_at_a_tiny_size",
        "test_compositions.py::test_augkd_run_makes_a_composition_and_records_how",
        "test_reliability.py::test_a_signal_inside_an_epoch_saves_that_step_and_the_resumed_run_equals_an_uninterrupted_one",
        "test_reliability.py::test_sigkill_during_teacher_training_then_resume",
        "test_elsewhere.py::test_a_full_disk_fails_in_one_line_and_the_next_run_needs_no_cleaning",
        "test_elsewhere.py::test_sigterm_says_how_to_resume",
        "test_cluster.py::test_a_preempted_job_requeues_and_resumes",
        "test_shared_machines.py::test_a_job_out_of_time_keeps_its_cells_says_why_and_how_to_go_on"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: one of the slowest tests, run with AUGKD_SLOW_TESTS=1")


def pytest_collection_modifyitems(config, items):
    "Mark the `SLOW` tests, and skip them unless `AUGKD_SLOW_TESTS=1`."
    skip = pytest.mark.skip(reason="slow: run with AUGKD_SLOW_TESTS=1")
    for item in items:
        if f"{Path(str(item.fspath)).name}::{item.originalname}" in SLOW:
            item.add_marker(pytest.mark.slow)
            if os.environ.get("AUGKD_SLOW_TESTS") != "1": item.add_marker(skip)


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
