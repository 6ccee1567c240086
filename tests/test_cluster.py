"""Past one machine, without a cluster: a grid through submitit's local executor gives the cells and tables `--jobs`
gives; a job signalled as Slurm signals before preemption requeues and resumes to the result of an uninterrupted one;
every run leaves TensorBoard events that TensorBoard's own reader reads."""
import json, os, signal, time

import pytest

from conftest import QUICK

GRID = dict(methods=["wo_kd", "augkd_no_anchor"], settings=["HP-M"], seeds=[0], shots=[5], preset="quick", progress=False)


def test_local_executor_gives_the_cells_and_tables_of_worker_processes(tmp_path, monkeypatch):
    from augkd.bench import bench
    monkeypatch.setenv("AUGKD_THREADS", "1")  # one thread here and in the job: bf16 on a CPU rounds by its thread count
    here = bench(out=tmp_path / "here", **GRID)
    there = bench(out=tmp_path / "there", executor="local", **GRID)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(there) == strip(here)
    assert (tmp_path / "there" / "bench.md").read_text().split("\n")[:6] == (tmp_path / "here" / "bench.md").read_text().split("\n")[:6]
    assert list((tmp_path / "there" / "submitit").iterdir()), "submitit keeps its jobs' logs in the benchmark's submitit/ folder"
    again = bench(out=tmp_path / "there", executor="debug", **GRID)  # finished cells are reused under any executor
    assert [r["seconds"] for r in again] == [r["seconds"] for r in there]


def test_a_preempted_job_requeues_and_resumes(tmp_path, monkeypatch):
    "SIGUSR1 to a running group's task (Slurm's signal before preemption; here submitit's local executor) requeues it (Linux: /proc)."
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")  # the jobs' processes read it when they start
    from augkd.bench import GroupJob, make_executor, run_cell
    longer = dict(anchor_epochs=4, mixup_epochs=150)  # stage 3 long enough (seconds) to be signalled inside
    group = ("HP-M", [5], 0, ["augkd"], "quick", tmp_path / "grid", False, None, longer)
    job = make_executor("local", tmp_path / "grid" / "submitit").submit(GroupJob(), *group)
    deadline = time.time() + 300  # the AuG-KD run lives in the grid's shared folder: signalled once stage 3 has checkpointed
    while time.time() < deadline and not list((tmp_path / "grid").rglob("ckpt/mixup.pt")): time.sleep(0.1)
    assert list((tmp_path / "grid").rglob("ckpt/mixup.pt")), job.stderr()
    controller = job._process.pid  # submitit's local controller: the job's task (the process running the group) is its child
    task = int(open(f"/proc/{controller}/task/{controller}/children").read().split()[0])
    os.kill(task, signal.SIGUSR1)  # what Slurm sends the job's task before it preempts it
    rows = job.result()
    log = (job.stdout() or "") + (job.stderr() or "")
    assert "Requeued" in log, log[-3000:]
    assert "stopped by signal 10" in log and "saved there" in log, log[-3000:]  # held until the step ended, saved there
    alone = run_cell("augkd", "HP-M", 0, "quick", tmp_path / "alone", shots=5, **longer)
    assert rows[0]["acc"] == alone["acc"]


def test_every_run_writes_tensorboard_events(tmp_path, cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    assert cli("run", *QUICK, "--out", tmp_path / "run").returncode == 0
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0}); events.Reload()
    stages = {tag.split("/")[0] for tag in events.Tags()["scalars"]}
    assert stages == {"generator", "anchor", "mixup"}
    assert {"generator/samples", "anchor/anchors", "mixup/mixup_path"} <= set(events.Tags()["images"])
    assert cli("run", *QUICK, "--out", tmp_path / "quiet", "--tensorboard", "false").returncode == 0
    assert not (tmp_path / "quiet" / "tb").exists()


def test_baseline_cells_write_tensorboard_events_too(tmp_path, cli):
    "Every training loop of a benchmark cell writes to CELL/tb, so `tensorboard --logdir BENCH` shows baselines beside AuG-KD's runs."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    done = cli("bench", "--methods", "wo_kd,dfq+", "--preset", "quick", "--settings", "HP-M", "--seeds", "0", "--shots", "5",
               "--jobs", "1", "--out", tmp_path / "bench")
    assert done.returncode == 0, done.stderr[-2000:]
    for method in ("wo_kd", "dfq+"):
        folder = next((tmp_path / "bench" / "cells" / method).iterdir()) / "tb"
        events = EventAccumulator(str(folder)); events.Reload()
        tags = set(events.Tags()["scalars"])
        assert any(t.endswith("/loss") for t in tags) and any("val" in t for t in tags), (method, tags)
        if method == "dfq+": assert len({t.split("/")[0] for t in tags}) >= 2, tags  # the distillation and the fine-tune
