"""Initial weights: a student or teacher from a weights file, from ImageNet through torchvision's API, or from the
offline stand-in corpus; every method's student from the chosen init; missing ImageNet files refused in one line."""
import json

import pytest
import torch
import torchvision

import augkd.inits as inits
import augkd.pipeline as pipeline
import augkd.baselines  # noqa: F401  the roster registers itself
from augkd.cells import Cell, score
from augkd.methods import METHODS
from augkd.models import Normalized, create_model
from augkd.pipeline import build_models
from augkd.stages import make_config
from conftest import QUICK, in_process


@pytest.fixture
def offline_torch_cache(tmp_path, monkeypatch):
    "An empty torch cache, and no attempt to fetch weights: what a machine without internet sees."
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("AUGKD_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


def small_weights(path, num_classes=26, seed=7):
    "A cnn_small state dict with another classifier, as a training script saves it (nested, beside metadata)."
    torch.manual_seed(seed)
    net = create_model("cnn_small", num_classes)
    torch.save({"epoch": 12, "best_acc": torch.tensor(0.9), "state_dict": net.state_dict()}, path)
    return net.state_dict()


def test_a_weights_file_starts_the_student_and_the_run_records_what_it_loaded(tmp_path):
    saved = small_weights(tmp_path / "pretrained.pt")
    code, err = in_process("run", *QUICK, "--student-init", tmp_path / "pretrained.pt", "--out", tmp_path / "run")
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    record = results["inits"]["student"]
    assert record["init"] == str(tmp_path / "pretrained.pt") and record["source"] == str(tmp_path / "pretrained.pt")
    assert record["new"] == ["10.weight", "10.bias"]  # the classifier, for the student domain's 10 classes
    assert record["loaded"] == len(saved) - 2 and record["left_out"] == ["10.bias", "10.weight"]
    assert results["provenance"]["student_init"] == record["hash"]  # part of every stage key
    assert results["inits"]["teacher"]["init"] == "scratch"


def test_the_inits_content_is_part_of_the_keys(tmp_path):
    small_weights(tmp_path / "a.pt", seed=1)
    small_weights(tmp_path / "b.pt", seed=2)
    keys = {}
    for name in ("a", "b"):
        init = inits.resolve_init(str(tmp_path / f"{name}.pt"), "cnn_small")
        keys[name] = inits.init_fingerprint(str(tmp_path / f"{name}.pt")), init["hash"]
    assert keys["a"][0] != keys["b"][0] and keys["a"][1] != keys["b"][1]
    from augkd.bench import cell_key
    assert cell_key(make_config("quick", student_init=str(tmp_path / "a.pt"))) != cell_key(make_config("quick", student_init=str(tmp_path / "b.pt")))
    assert cell_key(make_config("quick")) == cell_key(make_config("quick", student_init="scratch"))


def test_imagenet_weights_load_through_torchvisions_api_from_the_torch_cache(offline_torch_cache):
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    placed = torchvision.models.resnet18(num_classes=1000).state_dict()
    offline_torch_cache.mkdir(parents=True)
    torch.save(placed, offline_torch_cache / "resnet18-f37072fd.pth")
    config = make_config("quick", student_arch="resnet18", student_stem="standard", student_init="imagenet")
    teacher = Normalized(create_model("cnn_small", 10), [0.5] * 3, [0.25] * 3)
    student = build_models(config, 10, teacher, names=("student",))["student"]
    assert student.init_record["init"] == "imagenet" and student.init_record["source"].startswith(str(weights))
    assert student.init_record["new"] == ["fc.weight", "fc.bias"]
    for name in ("conv1.weight", "layer3.0.downsample.1.running_var", "layer4.1.bn2.bias"):
        assert torch.equal(student.net.state_dict()[name], placed[name]), name


@pytest.mark.parametrize("options", [["--preset", "quick", "--student-arch", "resnet18", "--student-init", "imagenet"],
                                     ["--preset", "paper"]])
def test_missing_imagenet_weights_are_refused_in_one_line_before_anything_is_written(offline_torch_cache, tmp_path, options):
    code, err = in_process("run", *options, "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "are not on this machine and cannot be fetched" in err and str(offline_torch_cache) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field, value, message", [
    ("student_init", "imagenet", "cnn_small has no ImageNet weights"),
    ("teacher_init", "/no/such/weights.pt", "the path of an existing weights file"),
])
def test_inits_that_cannot_apply_are_refused_up_front(tmp_path, field, value, message):
    code, err = in_process("run", *QUICK, f"--{field.replace('_', '-')}", value, "--out", tmp_path / "run")
    assert code == 2 and message in err and not (tmp_path / "run").exists(), err


def test_the_stand_in_corpus_builds_and_pretrains_a_student_and_a_teacher_under_quick(tmp_path, monkeypatch):
    monkeypatch.setattr(inits, "PRETRAIN_SIZE", 4)  # 312 images, one epoch: the recipe's code, at test size
    monkeypatch.setattr(inits, "PRETRAIN_EPOCHS", 1)
    monkeypatch.setenv("AUGKD_CACHE", str(tmp_path / "cache"))  # these small weights stay out of the session's cache
    code, err = in_process("run", *QUICK, "--student-init", "letters", "--teacher-init", "letters", "--out", tmp_path / "run")
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for who in ("student", "teacher"):
        record = results["inits"][who]
        assert record["init"] == "letters" and "pretrained on letters" in record["source"], record
        assert record["new"] == ["10.weight", "10.bias"]  # the 26 letters' classifier is replaced
    cached, = (tmp_path / "cache" / "pretrained").glob("letters-cnn_small-small*-r1")  # with -cpubf16 where the CPU trains in bf16
    report = json.loads((cached / "report.json").read_text())
    assert report["classes"] == 26 and report["images"] == 26 * 11 and 0 <= report["val"]["acc"] <= 1
    assert {"mask_between", "mask_within", "mask_open"} <= set(results["diagnostics"]["anchor"])


def test_every_methods_student_starts_from_the_chosen_init(tmp_path, monkeypatch):
    small_weights(tmp_path / "init.pt")
    config = make_config("quick", student_init=str(tmp_path / "init.pt"))
    students, build = [], pipeline.with_init

    class Built(Exception):
        "Stops a method once its student is built: what it trains next is the recipe test's concern."

    def recorded(net, init, mean, std):
        students.append(build(net, init, mean, std).init_record)
        raise Built

    monkeypatch.setattr(pipeline, "with_init", recorded)
    for method in METHODS:
        if method == "teacher": continue  # it trains no student
        students.clear()
        with pytest.raises(Built):
            score(method, Cell(config, tmp_path / method))
        assert students and students[0]["init"] == str(tmp_path / "init.pt") and students[0]["loaded"] > 0, method
