"""The `augkd` command end to end, as a user runs it from a shell."""
import json, subprocess, sys
from pathlib import Path

import torch


def test_train_teacher_writes_checkpoint_and_report(cli, tmp_path):
    out = tmp_path / "teacher"
    done = cli("train-teacher", "--setting", "HP-M", "--arch", "cnn_small", "--epochs", "1", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "student-domain test top-1" in done.stdout
    report = json.loads((out / "teacher.json").read_text())
    assert {"setting", "arch", "seconds", "val", "student_test"} <= set(report)
    assert report["setting"] == "HP-M" and report["arch"] == "cnn_small"
    for split in ("val", "student_test"):
        assert set(report[split]) == {"acc", "acc3", "acc5"}
        assert 0 <= report[split]["acc"] <= report[split]["acc3"] <= report[split]["acc5"] <= 1
    assert report["val"]["acc"] > 0.5, "one epoch of a small CNN should already beat chance by far"
    ckpt = torch.load(out / "teacher.pt", weights_only=True)
    assert ckpt["arch"] == "cnn_small" and ckpt["classes"] == [str(d) for d in range(10)]
    assert ckpt["setting"] == "HP-M" and len(ckpt["mean"]) == len(ckpt["std"]) == 3


def test_loaded_teacher_reproduces_its_report(cli, tmp_path):
    from augkd.data import load_setting
    from augkd.teacher import load_teacher
    from augkd.metrics import evaluate
    out = tmp_path / "t"
    assert cli("train-teacher", "--setting", "PM-H", "--arch", "cnn_small", "--epochs", "1", "--out", out).returncode == 0
    teacher, meta = load_teacher(out / "teacher.pt", "cpu")
    report = json.loads((out / "teacher.json").read_text())
    assert abs(evaluate(teacher, load_setting("PM-H").student_test)["acc"] - report["student_test"]["acc"]) < 1e-6


def test_unknown_setting_and_arch_are_refused(cli, tmp_path):
    bad_setting = cli("train-teacher", "--setting", "XX-Y", "--out", tmp_path / "x")
    assert bad_setting.returncode == 2 and "invalid choice: 'XX-Y'" in bad_setting.stderr
    bad_arch = cli("train-teacher", "--arch", "vgg99", "--out", tmp_path / "x")
    assert bad_arch.returncode == 2 and "vgg99" in bad_arch.stderr
    assert not (tmp_path / "x").exists()


def test_out_is_required(cli):
    done = cli("train-teacher")
    assert done.returncode == 2 and "--out" in done.stderr


def test_modules_import_from_any_directory(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import augkd.data, augkd.models, augkd.teacher, augkd; print(augkd.__version__)"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (Path(__file__).resolve().parents[1] / "settings.ini").read_text().split("version = ")[1].split()[0]
