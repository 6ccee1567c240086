"""Files from elsewhere, round two: a full disk that must not poison the caches, checkpoints as timm and Lightning
write them and `.safetensors`, any stack of wrapper prefixes, class names in another Unicode form, photo collections'
hidden entries and linked folders, very large scans, transparent images, and SIGTERM's resume hint. Each case on a
small input made here."""
import argparse, errno, json, os, pathlib, signal, subprocess, sys, time, types, unicodedata, warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import LONGER, QUICK, in_process
from augkd.data import image_folder_domain, class_folders
from augkd.models import Normalized, create_model
from augkd.teacher import load_teacher_file, match_classes

CLASSES = [str(d) for d in range(10)]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    "A cache of this test's own: its teacher is trained here."
    monkeypatch.setenv("AUGKD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_full_disk_fails_in_one_line_and_the_next_run_needs_no_cleaning(tmp_path, fresh_cache, monkeypatch):
    real = pathlib.Path.write_text
    def full_disk(self, *args, **kwargs):
        if "teacher.json" in self.name: raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)
    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    code, err = in_process("run", *QUICK, "--out", tmp_path / "first")
    lines = [l for l in err.replace("\r", "\n").splitlines() if "error" in l]  # the teacher's progress bars go to stderr too
    assert code == 2 and len(lines) == 1 and lines[0].startswith("augkd run: error: cannot write"), err[-2000:]
    assert "cannot write" in lines[0] and "teacher.json: No space left on device" in lines[0] and "free some space" in lines[0]
    cached = next((fresh_cache / "teachers").glob("*/"))
    assert not (cached / "teacher.json").exists()  # nothing half-written is left for later runs to trip on
    monkeypatch.setattr(pathlib.Path, "write_text", real)
    code, err = in_process("run", *QUICK, "--out", tmp_path / "second")  # space again: the run succeeds, nobody cleaned
    assert code == 0, err
    (cached / "teacher.json").write_text("")  # an entry emptied some other way: built again, with one warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, err = in_process("run", *QUICK, "--out", tmp_path / "third")
    assert code == 0, err
    said = [str(w.message) for w in caught if "cannot be read" in str(w.message)]
    assert len(said) == 1 and str(cached / "teacher.json") in said[0] and "Expecting value" not in err


def _teacher_weights():
    torch.manual_seed(0)
    return create_model("cnn_small", 10).state_dict()


def _lightning_attribute_dict():
    "A class pickled under Lightning's name, as a `.ckpt` holds it (Lightning itself is not installed here)."
    module = types.ModuleType("lightning.fabric.utilities.data")
    class AttributeDict(dict): pass
    AttributeDict.__module__, AttributeDict.__qualname__, module.AttributeDict = module.__name__, "AttributeDict", AttributeDict
    return module, AttributeDict


def test_checkpoints_as_timm_and_lightning_write_them_and_safetensors_teach(tmp_path):
    weights = _teacher_weights()
    ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}
    torch.save({"epoch": 12, "arch": "cnn_small", "state_dict": weights, "optimizer": {"state": {}, "param_groups": []},
                "version": 2, "args": argparse.Namespace(model="cnn_small", lr=0.05, epochs=12), "metric": 91.5,
                "state_dict_ema": ema}, tmp_path / "model_best.pth.tar")
    module, AttributeDict = _lightning_attribute_dict()
    names = ["lightning", "lightning.fabric", "lightning.fabric.utilities", module.__name__]
    sys.modules.update({n: module if n == module.__name__ else types.ModuleType(n) for n in names})  # importable, as pickle checks
    try:
        torch.save({"epoch": 3, "global_step": 300, "pytorch-lightning_version": "2.4.0",
                    "state_dict": {f"model.{k}": v for k, v in weights.items()}, "hyper_parameters": AttributeDict(lr=0.1, arch="cnn_small"),
                    "optimizer_states": [], "lr_schedulers": []}, tmp_path / "last.ckpt")
    finally:
        for n in names: del sys.modules[n]
    from safetensors.torch import save_file
    save_file({f"module._orig_mod.{k}": v.contiguous() for k, v in weights.items()}, tmp_path / "model.safetensors")

    x = torch.rand(4, 3, 32, 32)
    reference = Normalized(create_model("cnn_small", 10), [0.5] * 3, [0.25] * 3)
    reference.net.load_state_dict(weights)
    expected = reference.eval()(x)
    for name, key, stripped in (("model_best.pth.tar", None, ""), ("last.ckpt", None, "model."),
                                ("model.safetensors", None, "_orig_mod.")):  # the reader always drops DataParallel's module.
        model, meta = load_teacher_file(tmp_path / name, "cnn_small", CLASSES, ([0.5] * 3, [0.25] * 3), key=key)
        assert torch.allclose(model(x), expected, atol=1e-5), name
        assert meta["stripped"] == stripped, (name, meta["stripped"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_teacher_file(tmp_path / "model_best.pth.tar", "cnn_small", CLASSES)
    assert "took 'state_dict'" in str(caught[0].message) and "state_dict_ema" in str(caught[0].message)
    # end to end: timm's EMA weights through --teacher-key, with the run's record of them
    code, err = in_process("run", *QUICK, "--teacher", tmp_path / "model_best.pth.tar", "--teacher-arch", "cnn_small",
                           "--teacher-classes", ",".join(CLASSES), "--teacher-key", "state_dict_ema", "--out", tmp_path / "run")
    assert code == 0, err
    record = json.loads((tmp_path / "run" / "results.json").read_text())["inits"]["teacher"]
    assert record["weight_set"] == "state_dict_ema" and "args" in record["left_out"]


def test_code_in_a_checkpoint_is_refused_naming_its_key(tmp_path):
    torch.save({"epoch": 1, "model": torch.nn.Linear(2, 10), "acc": 0.5}, tmp_path / "whole.pt")
    with pytest.raises(ValueError, match=r"under the key 'model'.*torch.save\(model.state_dict\(\), PATH\)"):
        load_teacher_file(tmp_path / "whole.pt", "cnn_small", CLASSES)


def _photos(root, classes, n=3, size=12, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_class_names_typed_in_another_unicode_form_are_one_class(tmp_path):
    nfd = [unicodedata.normalize("NFD", n) for n in ("café", "crème")]
    domain = image_folder_domain(_photos(tmp_path / "photos", nfd), size=8, cache=False)
    typed = [unicodedata.normalize("NFC", n) for n in ("crème", "café")]  # as typed on the command line, other order
    assert domain.classes == sorted(typed)
    model = Normalized(create_model("cnn_small", 2), [0.5] * 3, [0.25] * 3)
    assert match_classes(model, typed, domain.classes) is model  # reordered, not refused
    assert image_folder_domain(tmp_path / "photos", size=8, classes=typed, cache=False).classes == typed


def test_photo_collections_hidden_entries_and_linked_folders(tmp_path):
    root = _photos(tmp_path / "photos", ["a", "b"])
    _photos(tmp_path / "elsewhere", ["more"], n=2, seed=1)
    os.symlink(tmp_path / "elsewhere" / "more", root / "a" / "linked")  # a linked sub-folder of two images
    os.symlink(root, root / "b" / "loop")  # a link back up: walked once, not forever
    Image.new("RGB", (12, 12)).save(root / "a" / "._0.png", format="PNG")  # AppleDouble: a readable PNG here, still hidden
    (root / "a" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (12, 12)).save(root / "a" / ".ipynb_checkpoints" / "0-checkpoint.png")  # a duplicate, hidden
    (root / "b" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".git").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        domain = image_folder_domain(root, size=8, cache=False)
    assert class_folders(root) == ["a", "b"]
    assert torch.bincount(domain.labels).tolist() == [3 + 2, 3]  # the linked images counted, nothing hidden
    hidden = [str(w.message) for w in caught if "hidden" in str(w.message)]
    assert len(hidden) == 1 and "3 hidden entries" in hidden[0]
    assert "a/._0.png" in hidden[0] and "a/.ipynb_checkpoints/" in hidden[0] and "b/.DS_Store" in hidden[0]
    assert not [w for w in caught if "do not decode" in str(w.message)]  # hidden files are not "unreadable"


def test_a_scan_above_pillows_bomb_limit_is_decoded(tmp_path, monkeypatch):
    root = tmp_path / "scans"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (400, 300), (200, 30, 10) if c == "a" else (10, 30, 200)).save(root / c / "scan.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # 120,000 pixels: above twice Pillow's limit, a "bomb" to it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        domain = image_folder_domain(root, size=8, cache=False)
    assert len(domain) == 2 and not [w for w in caught if "decode" in str(w.message)]
    assert domain.images[0, 0].mean().item() > 0.7  # red, decoded, not skipped
    import augkd.data
    monkeypatch.setattr(augkd.data, "DECODE_PIXELS", 100_000)  # above augkd's own limit: refused with the reason
    (root / "a" / "small.png").parent.mkdir(exist_ok=True)
    Image.new("RGB", (10, 10)).save(root / "a" / "small.png"); Image.new("RGB", (10, 10)).save(root / "b" / "small.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image_folder_domain(root, size=8, cache=False)
    said = " ".join(str(w.message) for w in caught)
    assert "400x300 pixels, above augkd's decode limit of 100,000" in said and "unreadable" not in said


def test_transparent_pngs_decode_as_they_look(tmp_path):
    root = tmp_path / "icons"
    for c, under in (("a", (0, 0, 0)), ("b", (0, 255, 0))):
        pixels = np.zeros((16, 16, 4), np.uint8)
        pixels[..., :3] = under  # what hides under the transparency differs ...
        pixels[4:12, 4:12] = (255, 0, 0, 255)  # ... the red square on it does not
        (root / c).mkdir(parents=True)
        Image.fromarray(pixels).save(root / c / "icon.png")
    domain = image_folder_domain(root, size=16, cache=False)
    assert torch.equal(domain.images[0], domain.images[1])
    assert domain.images[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]  # over white


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGUSR1, 138)])
def test_sigterm_says_how_to_resume(tmp_path, augkd_cache, signum, status):
    "SIGTERM (kill, a scheduler) and SIGUSR1 (Slurm's warning before preemption or the time limit) end a run with the resume hint."
    run = tmp_path / "run"
    proc = subprocess.Popen(["augkd", "run", *LONGER, "--mixup-epochs", "40", "--out", str(run)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "ckpt" / "generator.pt").exists(): time.sleep(0.2)
    proc.send_signal(signum)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == status, err
    assert f"augkd run --out {run} --resume" in err and "interrupted" in err
    done = subprocess.run(["augkd", "run", "--out", str(run), "--resume", "--report", "false"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
