"""The benchmark scripts' own parts on small inputs: the profile of a run (py-spy's samples sorted into the
run's parts and the step functions' lines), the harness that times the reference code's stage 1, and the parts of
the side-by-side check against the reference code (its folders, its patches, its log, the table), and the workbench
at scale (a run's samples repeated to a count, and the notebook the browser measures)."""
import json, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import profile_run, reference_check, regimes, throughput, workbench_bench  # noqa: E402


def test_profile_parts_count_each_sample_once_per_part(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "<module> (<string>:1);run (augkd/pipeline.py:9);train_generator (augkd/generator.py:5);"
        "generator_step.<locals>.step (augkd/generator.py:237);forward (torch/nn/modules/conv.py:1) 100\n"
        "<module> (<string>:1);run (augkd/pipeline.py:9);train_generator (augkd/generator.py:5);"
        "stage_diagnostics (augkd/anchor.py:3) 50\n"
        "<module> (<string>:1);run (augkd/pipeline.py:9);_run_stages (augkd/pipeline.py:40);"
        "_run_stages.<locals>.<lambda> (augkd/pipeline.py:41);stage_diagnostics (augkd/anchor.py:3) 5\n"
        "<module> (<string>:1);write_report (augkd/report.py:2);anchor_map_figure (augkd/viz.py:9) 10\n"
        "<module> (<string>:1);write_report (augkd/report.py:2);fit_map (augkd/viz.py:7) 25\n"
        "Thread._bootstrap (threading.py:1002);wait (threading.py:3) 1000\n")
    samples = profile_run.read_samples(raw)
    assert len(samples) == 5, "other threads' samples are left out"
    parts = profile_run.part_seconds(samples, rate=50)
    assert parts["stage 1 (generator)"] == 3.0 and parts["  stage 1: its steps"] == 2.0
    assert parts["  stage 1: diagnostics after every epoch"] == 1.0
    assert parts["report"] == 0.7 and parts["  report: its 2-D map (UMAP)"] == 0.5 and parts["  report: figures and HTML"] == 0.2
    assert parts["diagnostics between stages"] == 0.1
    assert parts["  stage 3: its steps"] == 0.0
    lines = profile_run.step_lines(samples, 50, ROOT / "augkd")
    (where, code, seconds), = lines["generator_step.<locals>.step"]
    assert (where, seconds) == ("augkd/generator.py:237", 2.0)


def test_profile_run_times_a_run_end_to_end(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "profile_run.py"), "--out", str(tmp_path / "run"),
                           "--json", str(out), "--", "--preset", "quick", "--report", "false"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert set(figures["stages"]) == {"generator", "anchor", "mixup"}
    assert 0 < figures["stages_total"] < figures["wall"] and figures["peak_memory_gb"] > 0.1
    assert "| stages together |" in done.stdout


FAKE_TRAINER = '''
    import time
    from tqdm import tqdm
    import torch
    calls = []
    def df_train(teacher, student, encoder, decoder, criterion, optimizer, scheduler, n_epochs, s_val, args,
                 device="cuda:0", epoch_offset=0):
        torch.autograd.set_detect_anomaly(True)
        for epoch in range(n_epochs):
            bar = tqdm(range(200))
            for i in bar:
                calls.append(i)
                time.sleep(0.01)
                bar.set_description(str(i))
        raise AssertionError("the harness stops the loop")
'''


@pytest.fixture
def fake_reference(tmp_path):
    "A stand-in for a checkout of the reference code: its stage-1 function loops over range(200) in tqdm."
    for name, text in {"utils/__init__.py": "", "utils/trainer.py": FAKE_TRAINER,
                       "utils/criteria.py": "class _L:\n    def __init__(self, **kw): pass\n"
                                            "Accuracy = CVAELoss = DecoderLoss = KLDivLoss = _L\n",
                       "datasets/__init__.py": "", "datasets/config.py": "import enum\nclass Datasets(enum.Enum):\n    CIFAR10 = 'c'\n",
                       "models/__init__.py": "",
                       "models/generator.py": "import torch\nclass Encoder(torch.nn.Module):\n    def __init__(self, *a, **k):\n"
                                              "        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))\n"
                                              "class Generator(Encoder): pass\n"}.items():
        path = tmp_path / "ref" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    yield tmp_path / "ref"
    for module in [m for m in sys.modules if m.split(".")[0] in ("utils", "datasets", "models")]: del sys.modules[module]
    sys.path.remove(str((tmp_path / "ref").resolve()))


def test_reference_harness_times_the_reference_loop_and_stops_it(fake_reference):
    seconds = throughput.reference_stage1(str(fake_reference), iters=3)
    import utils.trainer
    assert utils.trainer.calls == [0, 1, 2, 3], "one warm-up iteration, then the timed ones, then it stops"
    assert 0.005 < seconds < 1.0
    assert not torch.is_anomaly_enabled(), "the reference's anomaly detection is turned off again"


def test_reference_harness_names_a_wrong_folder(tmp_path):
    with pytest.raises(SystemExit, match="is not a checkout of the reference AuG-KD code"):
        throughput.reference_stage1(str(tmp_path), iters=1)


REFERENCE_FILES = {  # the lines of the reference code that its patches change, in a stand-in checkout
    "main.py": "import os\nimport wandb\nfrom torch import nn\n",
    "models/__init__.py": "def get_pretrained_model(name, n):\n    model = get_model(name, weights=list(get_model_weights(name))[-1])\n",
    "utils/trainer.py": "".join(f"def f{i}(device: str = 'cuda:0'): pass\n" for i in range(5))
                        + "a = torch.load(os.path.join(args.log_dir, ckpt_dir))\n" * 2
                        + "                    outputs = model(x)\n                    t_outputs = model(x)\n",
}


def _checkout(root, files=REFERENCE_FILES):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / ".git").mkdir()
    return root


def test_reference_check_patches_a_copy_and_says_why(tmp_path):
    checkout = _checkout(tmp_path / "ref")
    applied = reference_check.apply_patches(checkout, tmp_path / "copy")
    assert [f for f, _ in applied] == ["main.py", "models/__init__.py", "utils/trainer.py", "utils/trainer.py"]
    assert all(why for _, why in applied)
    copy = tmp_path / "copy"
    assert "wandb" not in (copy / "main.py").read_text() and "weights=None" in (copy / "models/__init__.py").read_text()
    trainer = (copy / "utils/trainer.py").read_text()
    assert trainer.count("else 'cpu'") == 5 and trainer.count("weights_only=False") == 2
    assert not (copy / ".git").exists() and (checkout / "main.py").read_text() == REFERENCE_FILES["main.py"], "the checkout is left alone"
    (copy / "job.log").write_text("a job running in the copy")
    assert reference_check.apply_patches(checkout, copy) == applied and (copy / "job.log").exists(), "the same copy is reused"
    (checkout / "main.py").write_text("import os\n")
    with pytest.raises(SystemExit, match="main.py: expected 1 x 'import wandb.*found 0"):
        reference_check.apply_patches(checkout, tmp_path / "copy")
    with pytest.raises(SystemExit, match="is not a checkout of the reference AuG-KD code"):
        reference_check.apply_patches(tmp_path, tmp_path / "copy")
    assert "t_outputs = model(x)" in trainer, "the reference side keeps its stage-3 second pass through the student"
    counter = reference_check.apply_patches(_checkout(tmp_path / "ref2"), tmp_path / "counter", reference_check.REFERENCE_SIDES["counterfactual"])
    assert counter[:-1] == applied and "through the teacher" in counter[-1][1]  # the reference's patches and one more
    assert "t_outputs = teacher(x)" in (tmp_path / "counter" / "utils/trainer.py").read_text()


REFERENCE_LOG = """\
2026-12-01 10:00:00,000 - INFO - teacher=resnet18
2026-12-01 10:00:05,500 - INFO - Teacher: Acc = 0.655 Acc@3 = 0.800 Acc@5 = 0.900
2026-12-01 10:20:05,500 - INFO - Eval [0/1]: Decoder Loss:   12.345 Encoder Loss:    1.234 Acc = 0.443 Acc@3 = 0.600 Acc@5 = 0.700
2026-12-01 10:20:05,600 - INFO - Best is saved at epoch 0
2026-12-01 10:20:15,000 - INFO - Eval [0/2]:AnchorLoss = 3.210
2026-12-01 10:20:25,600 - INFO - Eval [1/2]:AnchorLoss = 3.100
2026-12-01 10:20:45,000 - INFO - Eval [0/2]:Acc = 0.700 Acc@3 = 0.850 Acc@5 = 0.900
2026-12-01 10:21:05,000 - INFO - Eval [1/2]:Acc = 0.750 Acc@3 = 0.860 Acc@5 = 0.910
2026-12-01 10:21:05,100 - INFO - Eval [best]:Acc = 0.750 Acc@3 = 0.860 Acc@5 = 0.910
2026-12-01 10:21:05,600 - INFO - Test:Acc = 0.828 Acc@3 = 0.950 Acc@5 = 0.980
"""


def test_reference_check_reads_the_reference_log():
    row = reference_check.parse_reference_log(REFERENCE_LOG + "a tqdm line without a time stamp\r\n")
    assert row["teacher"] == {"acc": 0.655, "acc3": 0.8, "acc5": 0.9}
    assert row["stage1_student"]["acc"] == 0.443 and row["student"] == {"acc": 0.828, "acc3": 0.95, "acc5": 0.98}
    assert row["stages"] == {"generator": 1200.0, "anchor": pytest.approx(20.1), "mixup": pytest.approx(40.0)}
    unfinished = reference_check.parse_reference_log(REFERENCE_LOG.split("2026-12-01 10:20:15")[0])
    assert unfinished["student"] is None and unfinished["stages"]["anchor"] is None


def test_reference_check_tabulates_the_sides_and_asks_augkd_for_the_same_run(tmp_path):
    from augkd.cli import build_parser
    from augkd.stages import make_config
    pool = tmp_path / "pool"
    for c in ("0", "1", "2"): (pool / c).mkdir(parents=True)
    paths = {"pool": pool, "test": tmp_path / "test", "teachers": []}
    config = reference_check.side_config(1, paths, 20, gen_epochs=1, anchor_epochs=20, mixup_epochs=30)
    assert (config.gen_epochs * config.gen_iters, config.batch_size, config.latent_size, config.student_stem) == (200, 64, 100, "standard")
    from augkd.cli import _run_config, _run_method
    from augkd.methods import augkd_variants
    assert set(augkd_variants()) | {"augkd_code_norm"} <= set(reference_check.SIDES)  # every registered variant is a side
    for side, method, raw in (("augkd", "augkd", "normalized"), ("augkd_ref", "augkd_ref", "normalized"),
                              ("augkd_ce", "augkd_ce", "normalized"), ("augkd_code", "augkd_code", "unnormalized"),
                              ("augkd_code_norm", "augkd_code", "normalized")):
        argv = reference_check.augkd_args(side, config, tmp_path / "t.pt", tmp_path / "run")
        args = build_parser().parse_args(argv)
        assert _run_method(args) == method and _run_config(args).raw_input == raw, side  # the run records the method's own name
        assert args.teacher_classes == "0,1,2" and args.teacher_norm.startswith("0.4914,")
        assert (args.student_arch, args.gen_iters, args.shots, args.seed, args.precision) == ("resnet18", 200, 20, 1, "fp32")
    reference = reference_check.reference_main_args(paths, tmp_path / "t.pt", tmp_path / "ref", 1, config)
    given = dict(zip(reference[::2], reference[1::2]))
    assert (given["--g_epoch"], given["--a_epoch"], given["--epoch"], given["--batch_size"]) == ("1", "20", "30", "64")
    assert (float(given["--lr"]), float(given["--invariant"]), float(given["--a"])) == (config.lr_s, config.alpha, config.a)
    row = lambda side, seed, acc: {"side": side, "seed": seed, "wall": 600.0 * (seed + 1), "teacher": {"acc": 0.6},
                                   "student": {"acc": acc, "acc3": 0.9, "acc5": 0.95}, "stage1_student": {"acc": 0.4},
                                   "stages": {"generator": 1000.0, "anchor": 40.0, "mixup": None}}
    anchors = {"anchor_top1": 0.5, "anchor_energy": -7.25, "rec_top1": 0.25, "rec_energy": -6.0, "mask_open": 0.1}
    rows = [row("reference", 0, 0.80), row("reference", 1, 0.84), {**row("augkd", 0, 0.9), "anchors": anchors},
            {**row("augkd", 1, 0.9), "teacher_top1": {"test": {"acc": 0.7}}}]
    lines = reference_check.table(rows, config).splitlines()
    assert lines[2].startswith("| reference | 0,1 | - | 60.0 +- 0.0 | 82.0 +- 2.8 |") and lines[3].startswith("| augkd | 0,1 | 70.0 |")
    assert "| 50.0 | -7.2 | 25.0 | 10.0 |" in lines[3], "stage 2: the teacher on the anchors, their energy, on G(E(x, y)), the mask"
    assert lines[2].endswith("| 15.0 +- 7.1 | 5.0 +- 0.0 | 2.0 +- 0.0 | - |"), "wall in minutes; stage 1 per iteration, stage 2 per epoch"
    assert lines[-1].startswith("| augkd | 2 | +8.0 [-17.4, +33.4] |"), "paired by seed against the reference, with its interval"


FAKE_MAIN = REFERENCE_FILES["main.py"] + """import sys, torch, torchvision
from pathlib import Path
args = sys.argv[1:]
given = dict(zip(args[::2], args[1::2]))
out = Path(given["--log_dir"])
if "train_teacher" in args:  # a teacher of the reference's format, seeded by --seed
    torch.manual_seed(int(given["--seed"]))
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), out / "resnet18_ckpt.pt")
else:
    print(open(Path(__file__).parent / "log.txt").read())
"""


def test_reference_check_runs_every_side_of_a_seed_on_its_own_teacher(tmp_path, capsys):
    import hashlib
    from augkd.data import Domain, write_image_folder
    checkout = _checkout(tmp_path / "ref", {**REFERENCE_FILES, "main.py": FAKE_MAIN, "log.txt": REFERENCE_LOG})
    images = lambda n: Domain("d", torch.rand(n, 3, 32, 32), torch.arange(n) % 3, ["a", "b", "c"])
    for name in ("pool", "test", "t1"): write_image_folder(images(6), tmp_path / name)
    record = tmp_path / "sides.json"
    reference_check.main(["--reference", str(checkout), "--student-domain", str(tmp_path / "pool"), "--student-test", str(tmp_path / "test"),
                          "--teacher-domains", str(tmp_path / "t1"), "--teacher-recipe", "reference", "--seeds", "2",
                          "--sides", "reference,counterfactual", "--jobs", "2", "--out", str(tmp_path / "out"), "--json", str(record)])
    rows = json.loads(record.read_text())["rows"]
    assert sorted((r["side"], r["seed"]) for r in rows) == [("counterfactual", 0), ("counterfactual", 1), ("reference", 0), ("reference", 1)]
    for seed in (0, 1):
        file = tmp_path / "out" / "teacher" / f"s{seed}" / "resnet18_ckpt.pt"
        sha = hashlib.sha256(file.read_bytes()).hexdigest()
        assert {r["teacher_sha256"] for r in rows if r["seed"] == seed} == {sha}, "both sides of a seed read its one teacher file"
    assert len({r["teacher_sha256"] for r in rows}) == 2, "one independently trained teacher per seed"
    assert all(r["teacher_recipe"] == "reference" and 0 <= r["teacher_top1"]["test"]["acc"] <= 1 and r["machine"] for r in rows)
    assert all(r["student"]["acc"] == 0.828 for r in rows), "each side's figures read from its log"
    patches = [p["why"] for p in json.loads(record.read_text())["patches"]]
    assert any("through the teacher" in why for why in patches), "the counterfactual's patch listed"
    assert "t_outputs = teacher(x)" in (tmp_path / "out" / "reference-code-counterfactual" / "utils/trainer.py").read_text()
    assert "| counterfactual | 2 | +0.0 [+0.0, +0.0] |" in capsys.readouterr().out


RESUMED_LOG = """\
2026-12-01 11:00:00,000 - INFO - teacher=resnet18
2026-12-01 11:00:01,000 - INFO - Resume at Stage 2, Epoch 21/20
2026-12-01 11:00:31,000 - INFO - Eval [0/1]:Acc = 0.800 Acc@3 = 0.900 Acc@5 = 0.950
2026-12-01 11:00:41,000 - INFO - Test:Acc = 0.850 Acc@3 = 0.950 Acc@5 = 0.990
"""
RESUMING_MAIN = REFERENCE_FILES["main.py"] + """import sys, json, torch, torchvision
from pathlib import Path
def resume(args):  # the loads of its resume path
    return torch.load(args.resume), torch.load(args.a_dir), torch.load(args.a_dir), """ + "torch.load(args.g_dir), " * 6 + """
args = sys.argv[1:]
given = dict(zip(args[::2], args[1::2]))
out = Path(given["--log_dir"])
if "train_teacher" in args:
    torch.manual_seed(int(given["--seed"]))
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), out / "resnet18_ckpt.pt")
elif "--resume" in given:  # stage 3 alone, from another job's checkpoints
    (out / "given.json").write_text(json.dumps(given))
    print(open(Path(__file__).parent / "resumed.txt").read())
else:  # a whole job: its stage-1 and stage-2 checkpoints in its log folder
    (out / "resnet18_resnet18_1201_s0").mkdir(parents=True)
    for name in ("df_stat_ckpt.pt", "anchor_stat_ckpt.pt"): (out / "resnet18_resnet18_1201_s0" / name).write_text(name)
    print(open(Path(__file__).parent / "log.txt").read())
"""


def test_reference_check_counterfactual_can_run_stage3_alone_from_the_reference_checkpoints(tmp_path):
    from augkd.data import Domain, write_image_folder
    assert reference_check.parse_reference_log(RESUMED_LOG)["stages"] == {"generator": None, "anchor": None, "mixup": 40.0}
    checkout = _checkout(tmp_path / "ref", {**REFERENCE_FILES, "main.py": RESUMING_MAIN, "log.txt": REFERENCE_LOG, "resumed.txt": RESUMED_LOG})
    images = lambda n: Domain("d", torch.rand(n, 3, 32, 32), torch.arange(n) % 3, ["a", "b", "c"])
    for name in ("pool", "test", "t1"): write_image_folder(images(6), tmp_path / name)
    argv = ["--reference", str(checkout), "--student-domain", str(tmp_path / "pool"), "--student-test", str(tmp_path / "test"),
            "--teacher-domains", str(tmp_path / "t1"), "--teacher-recipe", "reference", "--counterfactual-stage3", "--jobs", "2"]
    with pytest.raises(SystemExit, match="reference's seed 0 is not finished; run its side first"):
        reference_check.main(argv + ["--seeds", "1", "--sides", "counterfactual", "--out", str(tmp_path / "alone")])
    record = tmp_path / "sides.json"
    reference_check.main(argv + ["--seeds", "1", "--sides", "counterfactual,reference", "--out", str(tmp_path / "out"), "--json", str(record)])
    rows = {r["side"]: r for r in json.loads(record.read_text())["rows"]}
    reference, counter = rows["reference"], rows["counterfactual"]
    assert counter["student"]["acc"] == 0.85 and reference["student"]["acc"] == 0.828, "stage 3 read from each side's own log"
    assert (counter["teacher"], counter["stage1_student"]) == (reference["teacher"], reference["stage1_student"]), "stages 1 and 2 shared"
    assert counter["stages_1_2"] == "the reference's, seed 0" and counter["stages"]["mixup"] == 40.0
    assert "counterfactual at seed(s) 0: stage 3 alone, from the reference's stage-1 and stage-2" in json.loads(record.read_text())["table"]
    given = json.loads((tmp_path / "out" / "counterfactual" / "s0" / "given.json").read_text())
    saved = tmp_path / "out" / "reference" / "s0" / "resnet18_resnet18_1201_s0"
    assert (given["--resume"], given["--g_dir"]) == (str(saved / "anchor_stat_ckpt.pt"), str(saved / "df_stat_ckpt.pt"))
    assert "--a_dir" not in given, "read by the reference only when it resumes stage 3"
    copy = (tmp_path / "out" / "reference-code-counterfactual" / "main.py").read_text()
    assert copy.count("weights_only=False") == 7 and "weights_only" not in (tmp_path / "out" / "reference-code" / "main.py").read_text()
    assert any("resume path" in p["why"] for p in json.loads(record.read_text())["patches"]), "the resume path's patches listed"
    restored = tmp_path / "restored" / "reference" / "s0"  # a reference row from a record, its checkpoints on another machine
    restored.mkdir(parents=True)
    with pytest.raises(SystemExit, match="no stage-1 and stage-2 checkpoints.*remove its row.json"):
        reference_check.reference_checkpoints(restored)


def test_reference_check_goes_on_from_committed_rows(tmp_path):
    row = {"side": "reference", "seed": 0, "wall": 60.0, "teacher_sha256": "ab" * 32, "student": {"acc": 0.6}}
    (tmp_path / "augkd" / "s0").mkdir(parents=True)
    (tmp_path / "augkd" / "s0" / "row.json").write_text(json.dumps({**row, "side": "augkd", "wall": 1.0}))
    older = {k: v for k, v in row.items() if k != "teacher_sha256"}
    record = {"rows": [row, {**row, "side": "augkd"}, {**older, "seed": 1}]}
    assert reference_check.restore_rows(record, tmp_path) == [("reference", 0), ("reference", 1)], "a finished step is kept"
    assert json.loads((tmp_path / "reference" / "s0" / "row.json").read_text()) == {**row, "machine": None}, "the record names no machine"
    assert json.loads((tmp_path / "reference" / "s1" / "row.json").read_text())["teacher_sha256"] is None, "an older row names no teacher"
    assert json.loads((tmp_path / "augkd" / "s0" / "row.json").read_text())["wall"] == 1.0
    assert reference_check.restore_rows(record, tmp_path) == [], "nothing twice"
    with pytest.raises(SystemExit, match="another budgets"):
        reference_check.restore_rows({**record, "budgets": {"anchor epochs": 20}}, tmp_path / "other", "HP-M", {"anchor epochs": 10})
    with pytest.raises(SystemExit, match="another setting"):
        reference_check.restore_rows({**record, "setting": "PM-H"}, tmp_path / "other", "HP-M", None)


def test_reference_check_writes_a_setting_as_the_folders_the_reference_reads(tmp_path):
    paths = reference_check.write_folders("HP-M", 5, tmp_path / "data")
    count = lambda root: {c.name: len(list(c.glob("*.png"))) for c in sorted(root.iterdir())}
    pool, test = count(paths["pool"]), count(paths["test"])
    assert list(pool) == [str(d) for d in range(10)] and set(pool.values()) == {5 + 2}, "the shots and the validation images"
    assert sum(test.values()) == 600 and [p.name for p in paths["teachers"]] == ["handwritten", "printed"]
    assert sum(sum(count(t).values()) for t in paths["teachers"]) == 1797 + 6000, "the teacher domains whole"
    stamp = (paths["pool"] / "0").stat().st_mtime_ns
    assert reference_check.write_folders("HP-M", 5, tmp_path / "data") == paths and (paths["pool"] / "0").stat().st_mtime_ns == stamp


def test_regimes_merges_new_cells_into_the_committed_ones():
    row = lambda method, seed, acc, device="H200": {"method": method, "setting": "HP-M", "shots": 20, "seed": seed, "acc": acc, "device": device,
                                                    "key": "k"}
    earlier = {"scratch": [row("augkd", 0, 0.7), row("cmi", 0, 0.4, "CPU")], "letters": [row("augkd", 0, 0.8)]}
    merged = regimes.merge_rows(earlier, {"scratch": [row("cmi", 0, 0.5, "CPU"), row("cmi", 1, 0.6, "CPU")]})
    assert merged["letters"] == earlier["letters"], "a regime not run stays"
    assert merged["scratch"] == [row("augkd", 0, 0.7), row("cmi", 0, 0.5, "CPU"), row("cmi", 1, 0.6, "CPU")], "a cell measured again replaces its row"
    assert regimes.merge_rows({}, {"scratch": [row("cmi", 0, 0.5)]}) == {"scratch": [row("cmi", 0, 0.5)]}
    other_key = {**row("augkd", 0, 0.6), "key": "other"}  # another config or arithmetic: another cell
    assert regimes.merge_rows(earlier, {"scratch": [other_key]})["scratch"] == earlier["scratch"] + [other_key]


def test_throughput_counts_flops_and_rates_them():
    layer, x = torch.nn.Linear(8, 4, bias=False), torch.rand(2, 8)
    assert throughput.count_flops(lambda: layer(x)) == 2 * 2 * 8 * 4, "a multiply and an add per weight and sample"
    assert throughput.count_flops(lambda: layer(x).sum().backward()) == 2 * 2 * 2 * 8 * 4, "as many again for the weight's gradient"
    assert throughput.rate(lambda: layer(x), repeats=3) > 0


def test_workbench_bench_repeats_a_runs_samples_to_a_count_and_writes_the_notebook_it_measures():
    from augkd.widgets import quick_run_dir
    run = str(quick_run_dir())
    wb = workbench_bench.scale_workbench(run, 1300, prior=20)  # the quick run's domain holds 1,170: some repeated
    assert len(wb.table()) == 1300 and set(wb.table()["split"]) == {"train", "val", "test"}
    assert len(wb.positions["z"]) == 1300 and len(wb.views["z_p"]) == 20 and wb.reducer.kind == "pca"
    first, again = wb.views["x"][0], wb.views["x"][1170]  # a repeat is the same image with a little noise
    assert wb.table()["index"][0] == wb.table()["index"][1170] and 0 < abs(first - again).max() < 0.2
    cells = ["".join(c["source"]) for c in workbench_bench.bench_notebook(run, 1300, opens=2)["cells"]]
    assert len(cells) == 1 + 2 + 2 and cells[1] == cells[2] and f"open_workbench({run!r})" in cells[1]
    assert f"scale_workbench({run!r}, 1300)" in cells[3]


def test_workbench_bench_clicks_sample_points_clear_of_others_each_another_sample():
    points = [[0, 0, 1], [100, 0, 2], [100, 3, -1], [50, 50, 3], [0, 100, 4], [52, 50, 5], [40, 40, 6]]
    test = workbench_bench.click_targets(points, 2, focus=1)  # sample 2 lies under a prior draw; 3 and 5 on each other
    assert test == [(0.0, 100.0, 4), (0.0, 0.0, 1)], test
    samples = [s for *_, s in workbench_bench.click_targets(points, 3, focus=4)]
    assert samples[:2] == [1, 6] and samples[2] != 6, samples  # the clear ones first, then crowded ones where too few
    repeats = [[0, 0, 1], [0, 1, 7], [80, 80, 2], [80, 81, 8]]  # 7 is a repeat of 1 drawn on it, 8 of 2
    clicks = workbench_bench.click_targets(repeats, 3, focus=1)
    assert [x for x, *_ in clicks] == [80, 0, 80], clicks  # from spot to spot: a click never lands on the focus's
