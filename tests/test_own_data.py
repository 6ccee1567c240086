"""Your own teacher and data: image folders and a plain torchvision state dict, through `augkd run` and
`augkd bench`, and the errors a user meets on the way."""
import json

import pytest
import torch

from augkd.data import digitshift, take_shots, write_image_folder
from augkd.models import create_model
from augkd.pipeline import load_run

CLASSES = [str(d) for d in range(10)]
SHUFFLED = ["3", "1", "4", "0", "5", "9", "2", "6", "8", "7"]  # the teacher's output order, not the folders'


@pytest.fixture(scope="module")
def own(tmp_path_factory, augkd_cache):
    "Student-domain folders (train and test) from DigitShift's photo digits and a plain torchvision state dict."
    root = tmp_path_factory.mktemp("own")
    photo = digitshift()["photo"]
    picked = photo.subset(take_shots(torch.arange(len(photo)), photo.labels, 30))
    picked = picked.subset(torch.argsort(picked.labels, stable=True))
    write_image_folder(picked.subset([i for i in range(len(picked)) if i % 3]), root / "M")
    write_image_folder(picked.subset(list(range(0, len(picked), 3))), root / "M-test")
    torch.manual_seed(0)
    torch.save(create_model("mobilenet_v3_small", 10, 32).state_dict(), root / "teacher.pt")
    return root


def teacher_args(own, classes=",".join(SHUFFLED)):
    return ["--teacher", own / "teacher.pt", "--teacher-arch", "mobilenet_v3_small", "--teacher-classes", classes,
            "--teacher-norm", "0.5,0.25"]


def test_run_on_own_folders_and_plain_state_dict(cli, own, tmp_path):
    done = cli("run", "--preset", "quick", "--student-domain", own / "M", "--student-test", own / "M-test",
               "--shots", "10", "--image-size", "16", *teacher_args(own), "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["setting"] == "M" and set(results["student"]) == {"acc", "acc3", "acc5"}
    assert (tmp_path / "run" / "report.html").exists()
    parts = load_run(tmp_path / "run")  # what the widget notebooks open
    assert (len(parts.splits.student_train), len(parts.splits.student_test)) == (100, 100)
    assert list(parts.splits.classes) == CLASSES


def test_bench_on_own_folders(cli, own, tmp_path):
    done = cli("bench", "--preset", "quick", "--methods", "teacher,wo_kd", "--seeds", "0", "--student-domain", own / "M",
               "--shots", "10", *teacher_args(own), "--out", tmp_path / "b")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["cells"]
    assert [(r["method"], r["setting"], r["shots"]) for r in rows] == [("teacher", "M", 10), ("wo_kd", "M", 10)]


def test_train_teacher_on_folders(cli, own, tmp_path):
    done = cli("train-teacher", "--teacher-domains", own / "M-test", "--student-domain", own / "M", "--arch", "cnn_small",
               "--epochs", "1", "--out", tmp_path / "t")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert report["setting"] == "M-test-M" and set(report["student_test"]) == {"acc", "acc3", "acc5"}
    half = cli("train-teacher", "--teacher-domains", own / "M-test", "--out", tmp_path / "u")
    assert half.returncode == 2 and "needs --teacher-domains DIR ... and --student-domain DIR" in half.stderr


def test_own_data_errors_are_one_line(cli, own, tmp_path):
    base = ["run", "--preset", "quick", "--student-domain", own / "M", "--out", tmp_path / "r"]
    no_teacher = cli(*base)
    assert no_teacher.returncode == 2 and "needs a teacher" in no_teacher.stderr
    wrong = cli(*base, *teacher_args(own, ",".join(["a"] + SHUFFLED[1:])))
    assert wrong.returncode == 2 and "the teacher's classes differ" in wrong.stderr and "'a'" in wrong.stderr
    no_names = cli(*base, "--teacher", own / "teacher.pt", "--teacher-arch", "mobilenet_v3_small")
    assert no_names.returncode == 2 and "--teacher-classes" in no_names.stderr
    missing = cli("run", "--preset", "quick", "--student-domain", own / "nowhere", *teacher_args(own), "--out", tmp_path / "m")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()
