"""The benchmark scripts' own parts on small inputs: the profile of a run (py-spy's samples sorted into the
run's parts and the step functions' lines) and the harness that times the reference code's stage 1."""
import json, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import profile_run, throughput  # noqa: E402


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
