"""Compositions as a user runs them: `augkd bench --methods augkd@dfq,...` takes the baseline's own stage 1 instead of
distilling again, `augkd run --method VARIANT@BASE` makes one run that records how to make it again, and what cannot be
composed is refused before anything runs."""
import json

from conftest import QUICK

GRID = ["--preset", "quick", "--settings", "HP-M", "--seeds", "0", "--shots", "5", "--jobs", "1"]


def test_a_composition_takes_its_base_stage_1_from_the_baseline_cell(tmp_path, cli):
    done = cli("bench", "--methods", "dfq+,augkd@dfq,augkd_no_anchor@dfq,4ds", *GRID, "--out", tmp_path / "bench")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["method"]: r for r in json.loads((tmp_path / "bench" / "bench.json").read_text())["cells"]}
    assert set(rows) == {"dfq+", "augkd@dfq", "augkd_no_anchor@dfq", "4ds"}
    assert all((tmp_path / "bench" / "cells" / name).is_dir() for name in rows)  # each composition is a cell of its own
    shared = next((tmp_path / "bench" / "shared").iterdir())
    assert len(list(shared.glob("dfq-student-*.pt"))) == 1  # dfq distilled once, for its cell and both compositions
    for name in ("augkd@dfq", "augkd_no_anchor@dfq"):
        assert 0 <= rows[name]["val_acc"] <= 1  # what a selection rule reads
        results = json.loads(next(shared.glob(f"{name.replace('@', '-at-')}-*/results.json")).read_text())
        assert results["method"] == name and results["stages"]["generator"]["stage1_shots"] == 5
        assert results["stages"]["generator"]["seconds"] < 1  # stage 1 was dfq's own, taken from the shared folder
    assert "teacher_acc" in rows["4ds"]  # 4Ds scores its adapted teacher too


def test_what_cannot_be_composed_is_refused_before_anything_runs(tmp_path, cli):
    for name, why in (("augkd@deepinv", "deepinv makes no generator"), ("augkd@kd", "'kd' is no data-free method"),
                      ("nothing@dfq", "'nothing' is none of")):
        done = cli("bench", "--methods", f"wo_kd,{name}", *GRID, "--out", tmp_path / "bench")
        assert done.returncode == 2 and why in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "bench" / "cells").exists()  # refused up front: not even wo_kd ran


def test_augkd_run_makes_a_composition_and_records_how(tmp_path, cli):
    run = tmp_path / "run"
    done = cli("run", *QUICK, "--method", "augkd_no_anchor@dfq", "--out", run)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert results["method"] == "augkd_no_anchor@dfq" and list(results["stages"]) == ["generator", "encoder", "mixup"]
    assert json.loads((run / "config.json").read_text())["stages"] == ["generator", "encoder", "mixup"]
    assert "--method augkd_no_anchor@dfq" in (run / "command.txt").read_text()
    again = cli("run", "--resume", "--out", run, "--report", "false")  # resumes as the method it recorded
    assert again.returncode == 0 and "mixup: finished earlier" in again.stdout + again.stderr, again.stderr[-2000:]
    refused = cli("run", *QUICK, "--method", "dfq+", "--out", tmp_path / "other")
    assert refused.returncode == 2 and "augkd bench --methods dfq+" in refused.stderr
    other = cli("run", *QUICK, "--method", "augkd_no_anchor@zskt", "--resume", "--out", run)  # a run of another method
    assert other.returncode == 2 and "holds a run of augkd_no_anchor@dfq, not augkd_no_anchor@zskt" in other.stderr, other.stderr[-2000:]
    no_budget = cli("run", *QUICK, "--method", "augkd@dfq", "--invert-steps", "0", "--out", tmp_path / "ref")
    assert no_budget.returncode == 2 and "has no encoder" in no_budget.stderr and not (tmp_path / "ref").exists()
    ce = cli("run", *QUICK, "--method", "augkd_ce@dfq")  # named by the composition, beside the plain run's default folder
    assert ce.returncode == 0, ce.stderr[-2000:]
    assert json.loads((tmp_path / "runs" / "HP-M-quick-s0-augkd_ce-at-dfq" / "results.json").read_text())["method"] == "augkd_ce@dfq"
