"""Teachers as users have them: torchvision state dicts as the reference AuG-KD code writes them (standard
torchvision stems at 32x32, no augkd metadata) load as they are, and a file that does not fit says what differs."""
import torch
import torchvision

from conftest import QUICK
from augkd.pipeline import load_run

CLASSES = ["--teacher-classes", ",".join(map(str, range(10))), "--teacher-norm", "0.5,0.25"]


def test_a_standard_resnet18_state_dict_loads_without_options(cli, tmp_path):
    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), tmp_path / "resnet18.pt")
    done = cli("run", *QUICK, "--teacher", tmp_path / "resnet18.pt", "--teacher-arch", "resnet18", *CLASSES, "--out", "r")
    assert done.returncode == 0, done.stderr
    teacher = load_run(tmp_path / "r").teacher.net
    assert teacher.conv1.kernel_size == (7, 7) and isinstance(teacher.maxpool, torch.nn.MaxPool2d), "torchvision's own stem"


def test_a_standard_mobilenet_state_dict_loads_with_its_stem_named(tmp_path):
    from augkd.teacher import load_teacher_file
    reference = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10).eval()
    torch.save(reference.state_dict(), tmp_path / "mobilenet.pt")
    teacher, meta = load_teacher_file(tmp_path / "mobilenet.pt", "mobilenet_v3_small", list("0123456789"), ([0.5] * 3, [0.25] * 3),
                                      stem="standard")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad(): assert torch.allclose(teacher(x), reference((x - 0.5) / 0.25), atol=1e-5), "the same network"
    assert meta["stem"] == "standard"


def test_a_file_that_does_not_fit_names_what_differs(cli, tmp_path):
    torch.save(torchvision.models.resnet34(weights=None, num_classes=10).state_dict(), tmp_path / "resnet34.pt")
    done = cli("run", *QUICK, "--teacher", tmp_path / "resnet34.pt", "--teacher-arch", "resnet18", *CLASSES, "--out", "r")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "does not fit architecture 'resnet18' (standard stem) at 32x32: layer1.2.conv1.weight: not in the model" in done.stderr
    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), tmp_path / "resnet18.pt")
    small = cli("run", *QUICK, "--teacher", tmp_path / "resnet18.pt", "--teacher-arch", "resnet50", *CLASSES, "--out", "r")
    assert small.returncode == 2 and "file (64, 64, 3, 3), model (64, 64, 1, 1)" in small.stderr, small.stderr
    assert not (tmp_path / "r").exists()
