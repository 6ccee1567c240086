"""A run directory written before the config was split into sections (augkd 1cbe16d, committed in
tests/fixtures/old_run) opens, reports and resumes as it is: its stage keys are the ones it was made with."""
import json, shutil

import torch

from conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "old_run"


def old_run(tmp_path):
    "A copy of the committed old run, its teacher file named where the copy lies (the run recorded an absolute path)."
    shutil.copytree(FIXTURE, tmp_path / "old")
    run_dir = tmp_path / "old" / "run"
    teacher = json.loads((run_dir / "teacher.json").read_text())
    (run_dir / "teacher.json").write_text(json.dumps({**teacher, "path": str(tmp_path / "old" / "teacher.pt")}))
    return run_dir


def test_old_run_keys_and_config_load(tmp_path):
    from augkd.rundir import RunDir, stage_keys
    from augkd.stages import Config
    run_dir = old_run(tmp_path)
    recorded = json.loads((run_dir / "config.json").read_text())
    config = Config.load(run_dir)
    assert config.hash() == recorded["hash"]
    for stage in ("generator", "anchor", "mixup"):
        ckpt = RunDir(run_dir).load_checkpoint(stage)
        assert ckpt["stage_hash"] in stage_keys(config, stage, recorded["provenance"]), stage


def test_old_run_opens_and_reports(tmp_path, cli):
    from augkd.pipeline import load_run
    from augkd.metrics import evaluate
    run_dir = old_run(tmp_path)
    parts = load_run(run_dir)
    assert evaluate(parts.student, parts.splits.student_test) == parts.results["student"]
    done = cli("report", run_dir)
    assert done.returncode == 0, done.stderr
    assert (run_dir / "report.html").stat().st_size > 10_000


def test_old_run_resumes_where_it_stopped(tmp_path, cli):
    run_dir = old_run(tmp_path)
    before = {s: (run_dir / "ckpt" / f"{s}.pt").read_bytes() for s in ("generator", "anchor")}
    recorded = json.loads((run_dir / "results.json").read_text())
    (run_dir / "ckpt" / "mixup.pt").unlink()  # killed during stage 3, before its first checkpoint
    (run_dir / "results.json").unlink()
    done = cli("run", "--out", run_dir, "--resume", "--report", "false")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "generator: finished earlier, skipped" in done.stdout and "anchor: finished earlier, skipped" in done.stdout
    assert {s: (run_dir / "ckpt" / f"{s}.pt").read_bytes() for s in before} == before  # stages 1 and 2 were not trained again
    results = json.loads((run_dir / "results.json").read_text())
    assert results["stages"]["generator"]["seconds"] == recorded["stages"]["generator"]["seconds"]
    assert torch.load(run_dir / "ckpt" / "mixup.pt", weights_only=True)["done"]
    assert results["teacher"] == recorded["teacher"]
