"""Faults a researcher meets on shared machines: bad values, bad folders, broken checkpoints, NaN losses,
Ctrl-C, SIGKILL at any point, and output that cannot be written. Each test would fail without its handling."""
import json, os, signal, subprocess, sys, threading, time, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import LONGER, QUICK, figures, metrics


# --- config ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--a", "1.5"], "config field a = 1.5 is out of range: allowed 0 < a <= 1"),
    (["--b", "-0.1"], "config field b = -0.1 is out of range: allowed 0 <= b <= 1"),
    (["--alpha", "2"], "config field alpha = 2.0 is out of range: allowed 0 <= alpha <= 1"),
    (["--latent-size", "0"], "config field latent_size = 0 is out of range: allowed a positive number"),
    (["--mixup-epochs", "-1"], "config field mixup_epochs = -1 is out of range"),
    (["--batch-size", "1"], "config field batch_size = 1 is out of range: allowed an integer from 2 to 65536"),
    (["--student-arch", "vgg99"], "config field student_arch = 'vgg99' is out of range"),
    (["--setting", "AB-C"], "config field setting = 'AB-C' is out of range"),
])
def test_cli_refuses_out_of_range_config_in_one_line(cli, tmp_path, args, message):
    done = cli("run", *QUICK, *args, "--out", tmp_path / "r")
    assert done.returncode == 2
    assert done.stderr.strip() == f"augkd run: error: {message}" or message in done.stderr.strip().splitlines()[-1]
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists(), "no work may start before the config is checked"


def test_unknown_preset_is_refused(cli, tmp_path):
    done = cli("run", "--preset", "huge", "--out", tmp_path / "r")
    assert done.returncode == 2 and "invalid choice: 'huge'" in done.stderr


def test_python_api_refuses_out_of_range_config():
    from augkd.pipeline import run
    from augkd.stages import Config, make_config
    with pytest.raises(ValueError, match="config field alpha = -1 is out of range"):
        make_config("quick", alpha=-1)
    with pytest.raises(ValueError, match="config field gen_epochs = 0 is out of range"):
        run(Config(gen_epochs=0), "/nonexistent/never-created")


# --- data ------------------------------------------------------------------------------------------

def write_png(path, size=(20, 20), mode="RGB", value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = np.full((size[1], size[0], channels), value, dtype=np.uint8).squeeze()
    Image.fromarray(array, mode).save(path)


def test_image_folder_faults(tmp_path):
    from augkd.data import image_folder_domain, folder_domains
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder_domain(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class sub-folders"):
        image_folder_domain(tmp_path / "empty")
    root = tmp_path / "d"
    write_png(root / "cat" / "grey.png", mode="L")
    write_png(root / "cat" / "alpha.png", mode="RGBA")
    write_png(root / "cat" / "tiny.png", size=(2, 3))
    (root / "cat" / "truncated.png").write_bytes((root / "cat" / "grey.png").read_bytes()[:40])
    (root / "cat" / "readme.txt").write_text("not an image")
    (root / "dog").mkdir()
    with pytest.raises(ValueError, match="class folder\\(s\\) with no readable images: dog"):
        image_folder_domain(root)
    write_png(root / "dog" / "ok.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        domain = image_folder_domain(root, size=8)
    skipped = " ".join(str(w.message) for w in caught)
    assert "truncated.png" in skipped and "readme.txt" in skipped, "skipped files must be listed"
    assert domain.images.shape == (4, 3, 8, 8)  # greyscale and RGBA become RGB, tiny images are resized up
    assert domain.classes == ["cat", "dog"]
    other = tmp_path / "other"
    write_png(other / "cat" / "a.png"); write_png(other / "cow" / "b.png")
    with pytest.raises(ValueError, match="class names differ"):
        folder_domains([other], root)


def test_teacher_with_other_classes_is_refused(cli, tmp_path):
    from augkd.models import Normalized, create_model
    from augkd.teacher import save_teacher
    teacher = Normalized(create_model("cnn_small", 3), [0.5] * 3, [0.5] * 3)
    save_teacher(tmp_path / "t.pt", teacher, "cnn_small", ["cat", "dog", "cow"], "mine")
    done = cli("run", *QUICK, "--teacher", tmp_path / "t.pt", "--out", tmp_path / "r")
    assert done.returncode == 2
    assert "the teacher's classes differ from the student domain's" in done.stderr
    assert "['cat', 'dog', 'cow']" in done.stderr and "'9'" in done.stderr


# --- checkpoints -----------------------------------------------------------------------------------

def test_checkpoints_load_without_pickled_code_and_corrupt_ones_are_refused(cli, tmp_path):
    run = tmp_path / "r"
    assert cli("run", *QUICK, "--out", run).returncode == 0
    for stage in ("generator", "anchor", "mixup"):
        torch.load(run / "ckpt" / f"{stage}.pt", weights_only=True)
    data = (run / "ckpt" / "anchor.pt").read_bytes()
    (run / "ckpt" / "anchor.pt").write_bytes(data[: len(data) // 2])
    done = cli("run", *QUICK, "--out", run, "--resume")
    assert done.returncode == 2 and "anchor.pt is unreadable (truncated or corrupt)" in done.stderr


def test_checkpoint_of_another_config_needs_force(cli, tmp_path):
    run = tmp_path / "r"
    assert cli("run", *QUICK, "--out", run).returncode == 0
    refused = cli("run", *QUICK, "--a", "0.3", "--out", run, "--resume")
    assert refused.returncode == 2 and "another config" in refused.stderr
    forced = cli("run", *QUICK, "--a", "0.3", "--out", run, "--resume", "--force")
    assert forced.returncode == 0, forced.stderr


# --- numeric faults --------------------------------------------------------------------------------

def test_nan_loss_stops_the_stage_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import augkd.anchor, augkd.pipeline, augkd.stages
    real_terms, calls = augkd.anchor.anchor_terms, {"n": 0}
    steps_per_epoch = 8  # 500 training images in batches of 64

    def poisoned(*args, **kwargs):
        terms = real_terms(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > steps_per_epoch + 1:  # after epoch 1's training steps and its validation
            terms["unc"] = terms["unc"] * float("nan")
        return terms

    monkeypatch.setattr(augkd.anchor, "anchor_terms", poisoned)
    with pytest.raises(ValueError, match=r"stage 2 \(anchor\): loss term unc is nan in epoch 2"):
        augkd.pipeline.run(augkd.stages.make_config("quick", anchor_epochs=3), tmp_path / "r", progress=False)
    ckpt = torch.load(tmp_path / "r" / "ckpt" / "anchor.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 1 and not ckpt["done"]
    assert all(torch.isfinite(v).all() for v in ckpt["state"]["modules"]["anchor"].values())


# --- interruption ----------------------------------------------------------------------------------

def _default_sigint():
    # a shell's background job ignores SIGINT, and children inherit that: restore the default so Ctrl-C works
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(run, *extra, env=None):
    return subprocess.Popen(["augkd", "run", *LONGER, "--out", str(run), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint)


def wait_for(proc, condition, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition(): return True
        time.sleep(0.02)
    return False


def collect(stream) -> list:
    "The characters of a process's stream, gathered by a background thread as they come."
    seen = []
    threading.Thread(target=lambda: seen.extend(iter(lambda: stream.read(1), "")), daemon=True).start()
    return seen


def reached(run, stage):
    return lambda: (run / "metrics.jsonl").exists() and any(m["stage"] == stage for m in metrics(run))


def resume_and_compare(run, expected, env=None):
    resumed = subprocess.run(["augkd", "run", *LONGER, "--out", str(run), "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert figures(run) == expected


def test_ctrl_c_exits_cleanly_with_resume_hint(tmp_path, uninterrupted):
    run = tmp_path / "r"
    proc = start(run)
    assert wait_for(proc, reached(run, "anchor")), "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and f"augkd run --out {run} --resume" in err
    resume_and_compare(run, uninterrupted)


def test_sigkill_in_stage_1_then_resume(tmp_path, uninterrupted):
    run = tmp_path / "r"
    proc = start(run)
    assert wait_for(proc, reached(run, "generator"))
    proc.kill(); proc.wait()
    resume_and_compare(run, uninterrupted)


KILL_DURING_SAVE = """
import os, signal, sys, torch
import augkd.data
real_save, calls = torch.save, {"n": 0}
def dying_save(obj, f, *a, **k):
    calls["n"] += 1
    if calls["n"] == int(os.environ["AUGKD_KILL_AT_SAVE"]):
        real_save(obj, f, *a, **k)
        with open(f, "r+b") as handle: handle.truncate(os.path.getsize(f) // 3)  # half-written
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *a, **k)
torch.save = dying_save
from augkd.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_a_checkpoint_write_then_resume(tmp_path, uninterrupted):
    run = tmp_path / "r"
    env = {**os.environ, "AUGKD_KILL_AT_SAVE": "4"}  # generator 1, 2, done; then the first anchor checkpoint
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, "run", *LONGER, "--out", str(run)],
                            capture_output=True, text=True, env=env)
    assert killed.returncode == -signal.SIGKILL
    assert not (run / "ckpt" / "anchor.pt").exists(), "the half-written file must never replace a checkpoint"
    assert list((run / "ckpt").glob(".*.tmp")), "the kill should have left the half-written temporary file"
    resume_and_compare(run, uninterrupted)


def test_sigkill_during_teacher_training_then_resume(tmp_path):
    cache = tmp_path / "fresh-cache"
    env = {**os.environ, "AUGKD_CACHE": str(cache)}
    subprocess.run([sys.executable, "-c", "from augkd.data import digitshift; digitshift()"], env=env, check=True)
    run = tmp_path / "r"
    proc = start(run, env=env)
    progress = collect(proc.stderr)
    assert wait_for(proc, lambda: "teacher cnn_small" in "".join(progress)), "the run never started training its teacher"
    assert proc.poll() is None and not (run / "config.json").exists() and not list((cache / "teachers").glob("*/teacher.pt")), \
        "the run should still be training its teacher"
    proc.kill(); proc.wait()
    resumed = subprocess.run(["augkd", "run", *LONGER, "--out", str(run), "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    # the teacher the resumed run trained and cached is the one an uninterrupted training makes. Compared with one trained
    # here, not with the session cache's: a teacher trained under another number of threads differs in its last bits,
    # and which process trains the session's teacher depends on how the test workers share out the tests
    done = subprocess.run(["augkd", "train-teacher", "--arch", "cnn_small", "--epochs", "1", "--out", str(tmp_path / "t")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    cached, = (cache / "teachers").glob("*/teacher.pt")
    weights = [torch.load(f, weights_only=True)["state_dict"] for f in (cached, tmp_path / "t" / "teacher.pt")]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# --- output ----------------------------------------------------------------------------------------

def test_unwritable_output_directory_gives_a_clear_error(cli):
    done = cli("run", *QUICK, "--out", "/sys/augkd-cannot-write-here")
    assert done.returncode == 2
    assert done.stderr.strip() == "augkd run: error: Operation not permitted: /sys/augkd-cannot-write-here"


FULL_DISK = """
import errno, os, sys, torch
def full(obj, f, *a, **k): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
torch.save = full
from augkd.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_full_disk_gives_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-c", FULL_DISK, "run", *QUICK, "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    error = [l for l in done.stderr.replace("\r", "\n").splitlines() if "error" in l]
    assert len(error) == 1 and error[0].startswith("augkd run: error: cannot write /") and "No space left on device" in error[0]
    assert "Traceback" not in done.stderr


def test_a_signal_inside_an_epoch_saves_that_step_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    "SIGTERM or SIGUSR1 during a step (here asked for as their handler asks, `request_stop`) saves the stage after that step."
    from augkd.pipeline import run
    from augkd.stages import make_config
    from augkd.train import Callback, request_stop
    config = make_config("quick", seed=0, anchor_epochs=4, mixup_epochs=5, batch_size=8)

    class SignalAt(Callback):  # what the CLI's handler does when the signal lands during step 3 of stage 3's epoch 2
        def after_step(self, learn):
            if learn.name.startswith("stage 3") and (learn.epoch, learn.steps) == (1, 3): request_stop(15)

    whole = run(config, tmp_path / "whole", progress=False, tensorboard=False)
    with pytest.raises(KeyboardInterrupt, match="stopped by signal 15 after step 3 of epoch 2, saved there"):
        run(config, tmp_path / "run", progress=False, tensorboard=False, callbacks=[SignalAt()])
    ckpt = torch.load(tmp_path / "run" / "ckpt" / "mixup.pt", weights_only=False)
    assert ckpt["state"]["epoch"] == 1 and ckpt["state"]["partial"]["steps"] == 3
    resumed = run(config, tmp_path / "run", resume=True, progress=False, tensorboard=False)
    assert resumed["student"] == whole["student"]
    assert metrics(tmp_path / "run") == metrics(tmp_path / "whole")  # every epoch's row, the stopped one too, once
