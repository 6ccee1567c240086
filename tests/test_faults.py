"""Faults that users of distillation codebases report, each injected with a small input: checkpoints as training
scripts write them, photos as phones write them, a last batch of one image, divergences under bf16 autocast, maps of
a handful of points, UMAP's notes."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from augkd.losses import UNCERTAINTIES, class_balance_entropy, kl_div, uncertainty_score
from augkd.data import Domain, image_folder_domain
from augkd.inits import read_weights
from augkd.mixup import handover_loss
from augkd.models import Normalized, create_model, recalibrate_bn
from augkd.recipe import fit
from augkd.viz import fit_map


@pytest.mark.parametrize("layout", ["imagenet_example", "metric_beside_model", "net_beside_acc", "data_parallel"])
def test_checkpoints_as_training_scripts_write_them_are_read(tmp_path, layout):
    net = create_model("cnn_small", 10)
    weights = net.state_dict()
    saved = {
        # the PyTorch ImageNet example: epoch, arch, a 0-d tensor best accuracy, the optimizer, DataParallel's prefixes
        "imagenet_example": {"epoch": 90, "arch": "cnn_small", "best_acc1": torch.tensor(71.3),
                             "optimizer": torch.optim.SGD(net.parameters(), lr=0.1).state_dict(),
                             "state_dict": {f"module.{k}": v for k, v in weights.items()}},
        "metric_beside_model": {"model": weights, "val_loss": 0.42, "epoch": 3},
        "net_beside_acc": {"net": weights, "acc": 93.1, "epoch": 199},
        "data_parallel": {f"module.{k}": v for k, v in weights.items()},
    }[layout]
    torch.save(saved, tmp_path / "ckpt.pth")
    read = read_weights(tmp_path / "ckpt.pth")
    assert read.keys() == weights.keys() and all(torch.equal(read[k], weights[k]) for k in weights)


def test_phone_photos_are_decoded_as_viewers_show_them(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255  # stored: the left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    (tmp_path / "photos" / "a").mkdir(parents=True)
    (tmp_path / "photos" / "b").mkdir()
    for cls in ("a", "b"): Image.fromarray(stored).save(tmp_path / "photos" / cls / "phone.jpg", exif=exif)
    images = image_folder_domain(tmp_path / "photos", size=8, cache=False).images
    top, bottom = images[0, :, :3].mean().item(), images[0, :, 5:].mean().item()
    left, right = images[0, :, :, :3].mean().item(), images[0, :, :, 5:].mean().item()
    assert top > 0.8 and bottom < 0.2, (top, bottom)  # shown: the white half on top (images in [0, 1])
    assert abs(left - right) < 0.12


def test_a_last_batch_of_one_image_trains(tmp_path):
    torch.manual_seed(0)
    model = Normalized(create_model("resnet18", 3, stem="standard"), [0.5] * 3, [0.25] * 3)  # 1x1 features at 32x32
    train = Domain("eight", torch.rand(8, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), ["a", "b", "c"])
    history = fit(model, train, epochs=1, batch_size=7, progress=False)  # 8 = 7 + 1: the one joins the seven
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    recalibrate_bn(model, torch.rand(257, 3, 32, 32))  # 256 + 1
    assert all(torch.isfinite(m.running_var).all() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_divergences_are_computed_in_float32_under_bf16():
    torch.manual_seed(0)
    t = (torch.randn(64, 10) * 5).bfloat16()
    s = (t.float() + 1e-2 * torch.randn(64, 10)).bfloat16()
    y = torch.randint(0, 10, (64,))
    exact = kl_div(t.float(), s.float())
    assert kl_div(t, s).dtype == torch.float32 and torch.allclose(kl_div(t, s), exact, atol=1e-7) and exact >= 0
    assert torch.allclose(kl_div(t, s, tau=10.0), kl_div(t.float(), s.float(), tau=10.0), atol=1e-8)
    for s_mixed, target in ((s, t), (s.float(), t.float())):
        loss = handover_loss(s.float(), s_mixed, target, y, 0.3)
        assert loss.dtype == torch.float32
    assert torch.allclose(handover_loss(s.float(), s, t, y, 0.3), handover_loss(s.float(), s.float(), t.float(), y, 0.3), atol=1e-6)
    assert torch.allclose(class_balance_entropy(t), class_balance_entropy(t.float()), atol=1e-6)
    for kind in UNCERTAINTIES:
        assert torch.allclose(uncertainty_score(t, kind), uncertainty_score(t.float(), kind), atol=1e-6), kind


def test_maps_of_a_handful_of_points_fall_back_or_say_what_they_need():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        few = fit_map(np.random.default_rng(0).normal(size=(3, 8)), "umap")
    assert few.kind == "pca" and few.embedding.shape == (3, 2) and "PCA map instead" in str(caught[0].message)
    assert fit_map(np.random.default_rng(0).normal(size=(2, 8)), "pca").embedding.shape == (2, 2)
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_map(np.zeros((1, 8)), "umap")


def test_a_umap_map_is_fitted_on_exact_neighbours_without_notes_for_the_user():
    "UMAP itself (10-20 s of compiling): scikit-learn's exact neighbours, and its notes on seeds and indexes not shown."
    latents = np.random.default_rng(0).normal(size=(60, 8))
    import umap  # noqa: F401  (its import notes an optional TensorFlow, an ImportWarning Python hides by default)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = fit_map(latents, "umap")
    assert fitted.kind == "umap" and fitted.embedding.shape == (60, 2) and np.isfinite(fitted.embedding).all()
    assert not [w for w in caught if "umap" in w.filename], [str(w.message) for w in caught]
    assert np.allclose(fitted.transform(latents[:5]), fitted.embedding[:5], atol=1e-6)  # a fitted latent lands on its place


def test_a_teacher_file_with_several_weight_sets_says_which_it_took_and_takes_the_one_named(tmp_path):
    from augkd.teacher import load_teacher_file
    torch.manual_seed(0)
    model, ema = create_model("cnn_small", 10).state_dict(), create_model("cnn_small", 10).state_dict()
    torch.save({"model": model, "ema": ema, "epoch": 30, "best": np.float64(0.8)}, tmp_path / "both.pt")
    classes = [str(d) for d in range(10)]
    with pytest.warns(UserWarning, match=r"holds 2 weight sets \(model, ema\): took 'model'"):
        first, meta = load_teacher_file(tmp_path / "both.pt", "cnn_small", classes)
    assert meta["key"] == "model" and torch.equal(first.net.state_dict()["10.weight"], model["10.weight"])
    assert meta["left_out"] == ["best", "ema", "epoch"]  # what the run records beside the weights it took
    chosen, meta = load_teacher_file(tmp_path / "both.pt", "cnn_small", classes, key="ema")
    assert meta["key"] == "ema" and torch.equal(chosen.net.state_dict()["10.weight"], ema["10.weight"])
    with pytest.raises(ValueError, match="has no weight set 'swa' \\(it has: model, ema\\)"):
        load_teacher_file(tmp_path / "both.pt", "cnn_small", classes, key="swa")
