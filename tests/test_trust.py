"""Runs you can trust and share: no code runs from a run directory, benchmark cells are keyed by everything
that shapes them, and one process writes a run directory at a time."""
import json, os, pickle, shutil, subprocess, sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import QUICK, in_process


@pytest.fixture(scope="session")
def finished_quick_run(tmp_path_factory, augkd_cache):
    "One finished `quick` run, made once; tests work on copies of it."
    run = tmp_path_factory.mktemp("finished") / "run"
    done = subprocess.run(["augkd", "run", *QUICK, "--out", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return run


class Payload:
    "Unpickling this runs a shell command that leaves a marker file."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))


def test_crafted_pickles_in_a_run_directory_never_run(cli, tmp_path, finished_quick_run):
    run = shutil.copytree(finished_quick_run, tmp_path / "run")
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
    row = json.loads((tmp_path / "b" / "bench.json").read_text())["cells"][0]
    assert (row["config"]["lr_s"], row["config"]["student_arch"], row["teacher"]["fingerprint"]) == (0.05, "cnn_large", "cached")
    assert len(list((tmp_path / "b" / "cells" / "wo_kd").iterdir())) == 2, "the changed options ran a cell of their own"
    again = cli(*grid)
    assert again.returncode == 0 and json.loads((tmp_path / "b" / "bench.json").read_text())["cells"][0]["config"]["lr_s"] == 0.001


def test_each_cell_is_keyed_by_the_config_its_method_runs(cli, tmp_path):
    "AuG-KD's variants set their switches; a change of augkd's defaults can never return another variant's figures."
    grid = ["bench", "--methods", "wo_kd,augkd,augkd_ref", "--settings", "HP-M", "--seeds", "0", "--preset", "quick", "--out", "b"]
    done = cli(*grid)
    assert done.returncode == 0, done.stderr
    rows = {r["method"]: r for r in json.loads((tmp_path / "b" / "bench.json").read_text())["cells"]}
    assert (rows["augkd"]["config"]["handover"], rows["augkd_ref"]["config"]["handover"]) == (True, False)
    assert (rows["augkd"]["config"]["invert_steps"], rows["augkd_ref"]["config"]["invert_steps"]) == (2, 0)
    assert rows["augkd"]["key"] != rows["augkd_ref"]["key"] == rows["wo_kd"]["key"]  # a baseline reads no AuG-KD switch
    shared = [p.name for p in (tmp_path / "b" / "shared").iterdir()]
    assert len(shared) == 1, "every method of a setting, seed and budget shares one folder"
    runs = sorted(p.name.split("-")[0] for p in (tmp_path / "b" / "shared" / shared[0]).glob("augkd*"))
    assert runs == ["augkd", "augkd_ref"], "the two variants ran apart, each in a folder named by its method (stage 1 reused)"
    again = cli(*grid, "--handover", "false")  # augkd with the reference's stage 3: a cell of its own
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "b" / "cells" / "augkd").iterdir())) == 2
    assert len(list((tmp_path / "b" / "cells" / "wo_kd").iterdir())) == 1, "baselines keep their cells"


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


def test_the_teacher_and_data_are_part_of_a_runs_identity(cli, tmp_path, finished_quick_run):
    shutil.copytree(finished_quick_run, tmp_path / "a")
    other = cli("train-teacher", "--setting", "HP-M", "--arch", "cnn_small", "--epochs", "1", "--seed", "1", "--out", "t")
    assert other.returncode == 0, other.stderr

    reused = cli("run", *QUICK, "--teacher", "t", "--out", "b", "--reuse", "a")
    assert reused.returncode == 0, reused.stderr
    assert "reused" not in reused.stdout, "stages trained with another teacher must not be reused"

    recorded = (tmp_path / "a" / "teacher.json").read_bytes()
    refused = cli("run", *QUICK, "--teacher", "t", "--out", "a", "--resume")
    assert refused.returncode == 2 and "the teacher's weights" in refused.stderr, refused.stderr
    assert (tmp_path / "a" / "teacher.json").read_bytes() == recorded, "a refused command writes nothing"

    before = json.loads((tmp_path / "b" / "results.json").read_text())
    again = cli("run", "--out", "b", "--resume", "--report", "false")  # the run's own config and teacher, nothing retyped
    assert again.returncode == 0, again.stderr
    after = json.loads((tmp_path / "b" / "results.json").read_text())
    assert (after["teacher"], after["student"], after["provenance"]) == (before["teacher"], before["student"], before["provenance"])

    other_data = cli("run", *QUICK, "--shots", "20", "--out", "a", "--resume")
    assert other_data.returncode == 2 and "shots 50 -> 20" in other_data.stderr


def test_a_forced_resume_records_what_each_stage_was_trained_under(cli, tmp_path, finished_quick_run):
    shutil.copytree(finished_quick_run, tmp_path / "r")
    forced = cli("run", *QUICK, "--a", "0.3", "--out", "r", "--resume", "--force")
    assert forced.returncode == 0, forced.stderr
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["config"]["a"] == 0.3
    assert [c["a"] for c in results["stages"]["mixup"]["trained_under"]] == [0.6], "stage 3 was trained with a = 0.6"


# --- every value checked before anything is written ------------------------------------------------


def plain_state_dict(path, nan=False):
    from augkd.models import create_model
    net = create_model("cnn_small", 10)
    if nan:
        with torch.no_grad(): next(net.parameters()).fill_(float("nan"))
    torch.save(net.state_dict(), path)
    return path


TEACHER_FILE = ["--teacher-arch", "cnn_small", "--teacher-classes", ",".join(map(str, range(10))), "--teacher-norm", "0.5,0.25"]


@pytest.mark.parametrize("options, message", [
    (["--w-bn", "-5"], "config field w_bn = -5.0 is out of range: allowed a weight >= 0"),
    (["--lr-s", "inf"], "config field lr_s = inf is out of range: allowed a finite number"),
    (["--wd-s", "-1"], "config field wd_s = -1.0 is out of range"),
    (["--seed", "-1"], "config field seed = -1 is out of range"),
    (["--batch-size", "100000000"], "config field batch_size = 100000000 is out of range"),
    (["--image-size", "64"], "config field image_size = 64 is out of range: allowed 32 for DigitShift"),
    (["--classes", "a,b"], "config field classes = 'a,b' is out of range: allowed only with student_domain"),
    (["--device", "cuda:7"], "config field device = 'cuda:7' is out of range: allowed a device this machine has"),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, options, message):
    code, err = in_process("run", *QUICK, *options, "--out", tmp_path / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith(f"augkd run: error: {message}")
    assert not (tmp_path / "r").exists()


def test_teacher_files_and_folders_are_checked_up_front(cli, tmp_path):
    plain = plain_state_dict(tmp_path / "plain.pt")
    no_arch = cli("run", *QUICK, "--teacher", plain, "--out", "r")
    assert no_arch.returncode == 2 and "plain state dict: name its architecture (--teacher-arch)" in no_arch.stderr
    broken = plain_state_dict(tmp_path / "nan.pt", nan=True)
    for method in ("teacher", "kd"):
        done = cli("bench", "--methods", method, "--settings", "HP-M", "--seeds", "0", "--preset", "quick",
                   "--teacher", broken, *TEACHER_FILE, "--out", "b")
        assert done.returncode == 2 and "the teacher's outputs on the student domain are not finite" in done.stderr, done.stderr
    tiny = tmp_path / "tiny"
    for c in range(10):
        (tiny / str(c)).mkdir(parents=True)
        for i in range(2): Image.new("RGB", (8, 8), (20 * c, 10 * i, 0)).save(tiny / str(c) / f"{i}.png")
    few = cli("run", *QUICK, "--student-domain", tiny, "--teacher", plain, *TEACHER_FILE, "--out", "r")
    assert few.returncode == 2 and "needs at least 8 images per class" in few.stderr, few.stderr
    untrained = cli("train-teacher", "--epochs", "0", "--out", "t")
    assert untrained.returncode == 2 and "--epochs 0 is out of range" in untrained.stderr
    assert not any((tmp_path / name).exists() for name in ("r", "b", "t"))
