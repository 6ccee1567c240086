"""A property of the command line: whatever values a user types, and whatever small image folder they point at,
`augkd run` either refuses at once (one line, exit 2, no run directory) or runs to completion."""
import math

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings, strategies as st
from PIL import Image

from conftest import in_process as augkd

NUMBERS = st.sampled_from([-1.0, 0.0, 1e-4, 0.001, 0.3, 0.6, 1.0, 2.0, math.inf, -math.inf, math.nan])
OPTIONS = st.fixed_dictionaries({}, optional={
    "--a": NUMBERS, "--b": NUMBERS, "--u": NUMBERS, "--alpha": NUMBERS, "--w-bn": NUMBERS, "--w-ce": NUMBERS,
    "--lr-s": NUMBERS, "--lr-a": NUMBERS, "--wd-s": NUMBERS, "--tau": NUMBERS,
    "--seed": st.sampled_from([-1, 0, 3, 2 ** 32]),
    "--batch-size": st.sampled_from([-4, 0, 1, 16, 64, 10 ** 9]),
    "--shots": st.sampled_from([-1, 0, 5, 50]),
    "--image-size": st.sampled_from([16, 30, 32, 64]),
    "--k": st.sampled_from([0, 1, 2]),
    "--uncertainty": st.sampled_from(["energy", "max_softmax", "entropy", "confidence"]),
    "--schedule": st.sampled_from(["linear", "step", "cosine"]),
    "--device": st.sampled_from(["cpu", "auto", "gpu", "cuda:9"]),
    "--classes": st.sampled_from(["0,1", ""]),
})
def budget(examples: int):
    "Settings for a property test that runs `examples` commands: no deadline, the same examples every run (CI)."
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def refused_or_completed(code: int, err: str, out) -> None:
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("augkd run: error: "), err
        assert not out.exists(), f"refused, yet {out} was made"
    else:
        assert code == 0, err
        assert (out / "results.json").exists()


@budget(8)
@given(options=OPTIONS)
@example(options={"--a": 0.3, "--uncertainty": "max_softmax", "--schedule": "step", "--shots": 5, "--seed": 3})
def test_random_values_are_refused_up_front_or_run(options, tmp_path_factory):
    out = tmp_path_factory.mktemp("values") / "r"
    flat = [f"{name}={value}" for name, value in options.items()]  # the = form passes negative values to argparse
    code, err = augkd("run", "--preset", "quick", "--report", "false", "--mixup-epochs", "1", "--out", out, *flat)
    refused_or_completed(code, err, out)


MODES = st.sampled_from(["RGB", "L", "P", "RGBA", "I;16", "text"])


def write_image(path, mode: str, size: int, shade: int) -> None:
    if mode == "text": path.with_suffix(".txt").write_text("not an image"); return
    if mode == "I;16": image = Image.fromarray(np.full((size, size), shade * 256, dtype=np.uint16))
    else: image = Image.new(mode, (size, size), shade if mode in ("L", "P") else (shade, 255 - shade, 0, 255)[:len(mode)])
    image.save(path)


@budget(4)
@given(counts=st.lists(st.integers(0, 10), min_size=2, max_size=3), mode=MODES, size=st.sampled_from([5, 32, 47]))
@example(counts=[9, 10], mode="I;16", size=47)  # examples that must run: 16-bit greyscale, palettes
@example(counts=[8, 8, 10], mode="P", size=5)
def test_random_small_folders_are_refused_up_front_or_run(counts, mode, size, tmp_path_factory):
    from augkd.models import create_model
    root = tmp_path_factory.mktemp("folders")
    names = [f"c{i}" for i in range(len(counts))]
    for name, count in zip(names, counts):
        (root / "data" / name).mkdir(parents=True)
        for i in range(count): write_image(root / "data" / name / f"{i}.png", mode, size, (37 * i + 11) % 256)
    torch.save(create_model("cnn_small", len(names)).state_dict(), root / "teacher.pt")
    out = root / "r"
    code, err = augkd("run", "--preset", "quick", "--report", "false", "--mixup-epochs", "1", "--student-domain", root / "data",
                      "--teacher", root / "teacher.pt", "--teacher-arch", "cnn_small", "--teacher-classes", ",".join(names),
                      "--out", out)
    refused_or_completed(code, err, out)
    readable = 0 if mode == "text" else min(counts)
    assert (code == 0) == (readable >= 8), (counts, mode, err)
