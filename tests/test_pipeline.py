"""`augkd run` end to end: the quick preset, reproducibility, and resume after SIGKILL mid-stage."""
import json, os, signal, subprocess, time

import pytest

from augkd.bench import HEADLINE
from conftest import LONGER, QUICK, figures, metrics


def test_quick_run_end_to_end_and_resume_of_a_finished_run(cli, tmp_path):
    done = cli("run", *QUICK, "--report", "true", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert {"method", "setting", "seed", "preset", "config", "teacher", "student", "stages", "seconds", "versions"} <= set(results)
    assert (results["method"], results["setting"], results["seed"], results["preset"]) == ("augkd", "HP-M", 0, "quick")
    assert set(results["student"]) == {"acc", "acc3", "acc5"} and set(results["stages"]) == {"generator", "anchor", "mixup"}
    assert all(results["stages"][s]["seconds"] > 0 for s in results["stages"])
    assert set(results["versions"]) == {"augkd", "torch", "torchvision"}
    assert json.loads((run / "config.json").read_text())["hash"]
    (student,) = json.loads((run / "splits.json").read_text())["student"].values()
    assert (student["shots"], student["val_shots"]) == (50, 7) and len(student["val"]) == 70  # 7 per class of 10
    assert [m["stage"] for m in metrics(run)] == ["generator"] * 2 + ["anchor"] * 2 + ["mixup"] * 3
    report = (run / "report.html").read_text()
    assert report.count("Plotly.newPlot") == 14 and "<script src=" not in report
    again = cli("run", *QUICK, "--out", run, "--resume")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished earlier, skipped") == 3
    assert json.loads((run / "results.json").read_text())["stages"] == results["stages"]


def test_same_seed_same_metrics(cli, tmp_path):
    for name in ("a", "b"):
        assert cli("run", *QUICK, "--out", tmp_path / name).returncode == 0
    assert figures(tmp_path / "a") == figures(tmp_path / "b")


def test_existing_run_needs_resume_and_same_config(cli, tmp_path):
    assert cli("run", *QUICK, "--out", tmp_path / "r").returncode == 0
    rerun = cli("run", *QUICK, "--out", tmp_path / "r")
    assert rerun.returncode == 2 and "already holds a run" in rerun.stderr
    other = cli("run", *QUICK, "--alpha", "0.5", "--out", tmp_path / "r", "--resume")
    assert other.returncode == 2 and "another config" in other.stderr


@pytest.mark.parametrize("stage", ["anchor", "mixup"])
def test_resume_after_sigkill_matches_uninterrupted_run(stage, uninterrupted, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(["augkd", "run", *LONGER, "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").exists() and any(m["stage"] == stage and m["epoch"] >= 1 for m in metrics(run)):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "results.json").exists()
    resumed = subprocess.run(["augkd", "run", *LONGER, "--out", str(run), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{stage}: resuming after epoch" in resumed.stdout
    assert figures(run) == uninterrupted


def test_run_with_a_given_teacher_directory(cli, tmp_path):
    assert cli("train-teacher", "--setting", "PM-H", "--arch", "cnn_small", "--epochs", "1", "--out", tmp_path / "t").returncode == 0
    done = cli("run", *QUICK, "--setting", "PM-H", "--teacher", tmp_path / "t", "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    teacher_report = json.loads((tmp_path / "t" / "teacher.json").read_text())
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["teacher"] == teacher_report["student_test"]  # the given teacher, scored on the same test split


def test_bad_values_fail_before_any_work(cli, tmp_path):
    for args, message in [(["--a", "0"], "config field a = 0.0 is out of range"),
                          (["--setting", "XY-Z"], "config field setting = 'XY-Z' is out of range"),
                          (["--teacher", tmp_path / "missing.pt"], "missing.pt")]:
        done = cli("run", *QUICK, *args, "--out", tmp_path / "bad")
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_tiny_bench_writes_all_files_and_reuses_finished_cells(cli, tmp_path):
    args = ["bench", "--methods", "wo_kd,augkd", "--settings", "HP-M", "--seeds", "0", "--preset", "quick", "--out", tmp_path / "b"]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["cells"]
    assert [(r["method"], r["setting"], r["seed"]) for r in rows] == [("wo_kd", "HP-M", 0), ("augkd", "HP-M", 0)]
    assert all({"acc", "acc3", "acc5", "seconds", "shots", "val_shots"} <= set(r) for r in rows)
    table = (tmp_path / "b" / "bench.md").read_text()
    assert f"| method | HP-M {HEADLINE['HP-M']}-shot |" in table and "**" in table  # a setting alone: its headline shots
    html = (tmp_path / "b" / "bench.html").read_text()
    assert "plotly" in html and "<script src=\"https://cdn" not in html
    second = cli(*args)
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["cells"] == rows  # reused: same seconds too


def test_bench_has_a_column_per_setting_and_shot_count_with_paired_intervals(cli, tmp_path):
    done = cli("bench", "--shots", "2,5", "--settings", "HP-M", "--seeds", "0,1", "--methods", "wo_kd,kd", "--preset", "quick",
               "--out", "b")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "b"
    assert {"bench.html", "bench.json", "bench.md"} <= {p.name for p in out.iterdir()}
    table = (out / "bench.md").read_text()
    assert "| method | HP-M 2-shot | HP-M 5-shot |" in table
    assert "Paired difference to `wo_kd`" in table and "| kd | " in table.split("Paired difference to `wo_kd`")[1]
    data = json.loads((out / "bench.json").read_text())
    assert sorted({(r["shots"], r["val_shots"], r["seed"]) for r in data["cells"]}) == [(2, 2, 0), (2, 2, 1), (5, 2, 0), (5, 2, 1)]
    vs = data["columns"]["HP-M 5-shot"]["kd"]["vs_baseline"]
    assert vs["method"] == "wo_kd" and vs["n"] == 2 and vs["low"] <= vs["diff"] <= vs["high"]
    assert data["columns"]["HP-M 2-shot"]["wo_kd"]["vs_best_other"]["method"] == "kd"
    cell = json.loads(next((out / "cells" / "kd").glob("HP-M-2shot-s0-*")).joinpath("cell.json").read_text())
    assert (cell["shots"], cell["val_shots"], cell["config"]["val_shots"]) == (2, 2, -1)


def test_bench_list_prints_registered_methods(cli):
    done = cli("bench", "--list")
    assert done.returncode == 0
    assert {"teacher", "wo_kd", "kd", "augkd", "augkd_no_anchor", "augkd_no_mixup", "cmi", "cmi+", "pre_dfkd", "pre_dfkd+"} <= set(done.stdout.split())
