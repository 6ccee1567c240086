"""Scale: the paper's benchmarks from folders laid out like theirs, several processes (gloo on the CPU),
mixed precision."""
import json, os, subprocess, sys
from pathlib import Path

from conftest import LONGER, QUICK, metrics
from augkd.data import synthetic_benchmark
from augkd.pipeline import load_run
from augkd.metrics import evaluate

# The `quick` preset's student top-1 on HP-M spreads over 0.10-0.24 across seeds 0-4 in one process
# (std 0.06), and 2-process runs of those seeds land -0.075 to +0.022 from their 1-process twins
# (measured here): a 2-process run must land within about two and a half of those stds.
NOISE = 0.15


def test_dataset_with_missing_root_is_refused_clearly(cli, tmp_path):
    done = cli("run", "--dataset", "office31", "--root", tmp_path / "MISSING", *QUICK)
    assert done.returncode == 2
    assert "Office-31 root" in done.stderr and "does not exist" in done.stderr and "README" in done.stderr
    assert "Traceback" not in done.stderr


def test_several_processes_refuse_a_used_directory_before_starting(cli, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "config.json").write_text("{}")
    done = cli("run", *QUICK, "--nproc", "2", "--out", "used")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("or choose another output directory") and "Traceback" not in done.stderr


def test_office31_shaped_tree_runs_quick_end_to_end(cli, tmp_path):
    root = synthetic_benchmark("office31", tmp_path / "office31")
    grid = cli("bench", "--dataset", "office31", "--root", root, "--settings", "AW-D", "--methods", "teacher,wo_kd",
               "--seeds", "0", "--preset", "quick", "--out", "bench")
    assert grid.returncode == 0, grid.stderr
    assert "| method | AW-D 50-shot |" in (tmp_path / "bench" / "bench.md").read_text()  # a dataset's settings at the config's shots
    # bf16 autocast here too: on a GPU it is the default; on the CPU it must at least run
    done = cli("run", "--dataset", "office31", "--root", root, "--setting", "AW-D", *QUICK, "--precision", "bf16", "--out", "run")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["setting"] == "AW-D"
    assert (results["config"]["dataset"], results["config"]["precision"]) == ("office31", "bf16")
    assert results["config"]["student_domain"] == str(root / "dslr" / "images")
    assert results["config"]["teacher_domains"] == f"{root / 'amazon' / 'images'},{root / 'webcam' / 'images'}"
    parts = load_run(tmp_path / "run")  # the reported figures are those of the student the run kept
    assert evaluate(parts.student, parts.splits.student_test) == results["student"]
    (root / "webcam" / "images" / "class_03").rename(root / "webcam" / "images" / "class_3")
    refused = cli("run", "--dataset", "office31", "--root", root, "--setting", "AW-D", *QUICK, "--out", "again")
    assert refused.returncode == 2 and "class folders differ" in refused.stderr


def test_bn_statistics_are_reduced_over_processes(tmp_path):
    "Two processes, each with half a batch, see the BatchNorm statistics (and loss) of the whole batch."
    script = tmp_path / "bn.py"
    script.write_text("""
import torch
from augkd.losses import BNStatistics
from augkd.models import create_model
from augkd.devices import init_distributed, rank, shard, world_size
init_distributed("cpu")
assert world_size() == 2
torch.manual_seed(0)
net = create_model("cnn_small", 10).eval()
x = torch.rand(16, 3, 32, 32) * 2
stats = BNStatistics(net)
net(x); whole = stats.loss().item()     # both processes feed the whole batch: its own statistics
net(shard(x)); halves = stats.loss().item()
open(f"rank{rank()}.txt", "w").write(f"{whole} {halves}")
""")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for r in (0, 1):
        whole, halves = (tmp_path / f"rank{r}.txt").read_text().split()
        assert abs(float(whole) - float(halves)) < 1e-4 * max(1.0, float(whole))


def test_two_process_run_matches_one_process_within_noise(cli, tmp_path, uninterrupted):
    done = cli("run", *LONGER, "--nproc", "2", "--out", "run", timeout=600)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    assert [r["stage"] for r in metrics(run)] == ["generator"] * 2 + ["anchor"] * 4 + ["mixup"] * 5  # one writer
    two = json.loads((run / "results.json").read_text())
    assert two["teacher"] == uninterrupted["teacher"]
    assert abs(two["student"]["acc"] - uninterrupted["student"]["acc"]) <= NOISE, (two["student"], uninterrupted["student"])


def test_every_trained_module_is_equal_on_every_rank_after_each_stage(tmp_path):
    "Two gloo processes: after each stage, every module that stage trained has the same parameters on both ranks."
    script = tmp_path / "ranks.py"
    script.write_text("""
import json, sys
import augkd.pipeline as pipeline
from augkd.files import content_hash
from augkd.devices import rank
original, trained = pipeline.run_stage, {}
def recorded(run_dir, stage, config, prov, ckpt, modules, *args, **kwargs):
    result = original(run_dir, stage, config, prov, ckpt, modules, *args, **kwargs)
    trained[stage.name] = {name: content_hash(dict(m.named_parameters())) for name, m in modules.items()}
    return result
pipeline.run_stage = recorded
from augkd.stages import make_config
pipeline.run(make_config("quick", device="cpu"), sys.argv[1], progress=False)
open(f"rank{rank()}.json", "w").write(json.dumps(trained))
""")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert list(ranks[0]) == ["generator", "anchor", "mixup"] and set(ranks[0]["anchor"]) == {"anchor", "encoder"}
    assert ranks[0] == ranks[1]
