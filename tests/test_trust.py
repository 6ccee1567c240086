"""Runs you can trust and share: no code runs from a run directory, benchmark cells are keyed by everything
that shapes them, and one process writes a run directory at a time."""
import json, os, pickle, subprocess, sys

import numpy as np

from conftest import QUICK


class Payload:
    "Unpickling this runs a shell command that leaves a marker file."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))


def test_crafted_pickles_in_a_run_directory_never_run(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("run", *QUICK, "--out", run).returncode == 0
    viz, marker = run / "viz", tmp_path / "code-ran"
    viz.mkdir()
    for kind in ("pca", "umap"):
        (viz / f"reducer-{kind}.pkl").write_bytes(pickle.dumps(Payload(marker)))  # what earlier versions read
        np.savez(viz / f"map-{kind}.npz", kind=np.array([Payload(marker)], dtype=object))  # an object array: a pickle inside
    assert not marker.exists()

    report = cli("report", run)
    assert report.returncode == 0, report.stderr
    explorers = subprocess.run([sys.executable, "-c", "import sys; from augkd.widgets import workbench, AnchorExplorer, "
                                "MixupExplorer, UncertaintyExplorer; wb = workbench(sys.argv[1]); "
                                "[E(wb) for E in (AnchorExplorer, MixupExplorer, UncertaintyExplorer)]", str(run)],
                               capture_output=True, text=True, env=os.environ.copy())
    assert explorers.returncode == 0, explorers.stderr
    assert not marker.exists(), "opening the run executed code from it"
    assert (viz / "map-pca.npz").stat().st_size > 0 and np.load(viz / "map-pca.npz", allow_pickle=False)["kind"] == "pca"


def test_benchmark_cells_are_keyed_by_their_whole_config(cli, tmp_path):
    grid = ["bench", "--methods", "wo_kd", "--settings", "HP-M", "--seeds", "0", "--preset", "quick", "--out", "b"]
    first = cli(*grid)
    assert first.returncode == 0, first.stderr
    changed = cli(*grid, "--lr-s", "0.05", "--student-arch", "cnn_large")
    assert changed.returncode == 0, changed.stderr
    row = json.loads((tmp_path / "b" / "bench.json").read_text())[0]
    assert (row["config"]["lr_s"], row["config"]["student_arch"], row["teacher"]["fingerprint"]) == (0.05, "cnn_large", "cached")
    assert len(list((tmp_path / "b" / "cells" / "wo_kd").iterdir())) == 2, "the changed options ran a cell of their own"
    again = cli(*grid)
    assert again.returncode == 0 and json.loads((tmp_path / "b" / "bench.json").read_text())[0]["config"]["lr_s"] == 0.001


def test_two_writers_of_one_run_directory(tmp_path):
    command = ["augkd", "run", *QUICK, "--out", str(tmp_path / "r")]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(p.wait(timeout=300), p.stderr.read()) for p in both]
    assert sorted(code for code, _ in done) == [0, 2], done
    refused = next(err for code, err in done if code == 2).strip()
    assert refused.startswith("augkd run: error: ") and len(refused.splitlines()) == 1
    assert "is being written by process" in refused or "already holds a run" in refused
    rows = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == len(set(rows)) == 7, "each epoch's metrics once"
