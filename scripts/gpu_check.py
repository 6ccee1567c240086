"""The GPU check: the default preset on DigitShift, the paper preset on a synthetic Office-31 tree, then the throughput and decode-once benchmarks.

    python scripts/gpu_check.py [--preset default] [--setting HP-M] [--device auto] [--precision auto] [--out DIR]

Sized to finish in under 8 minutes on one H100. Prints the device, each stage's seconds and images per
second (stage 1: generated images through G, T and S, k+1 batches per iteration; stage 2: student-domain
images through E, A, G and T; stage 3: raw and mixed images through the student), the accuracies, then
the throughput benchmark at the reference code's architectures and budgets (scripts/throughput.py
--reference) and the decode-once benchmark's epoch times. Everything it writes goes to --out (a temporary folder by default).
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

import torch

from augkd.data import synthetic_benchmark
from augkd.pipeline import run
from augkd.stages import make_config
from augkd.devices import resolve_device


def stage_images(config, n_train: int) -> dict:
    "How many images each stage pushes through its networks."
    return {"generator": config.gen_epochs * config.gen_iters * config.batch_size * (1 + config.k),
            "anchor": config.anchor_epochs * n_train,
            "mixup": config.mixup_epochs * n_train * 2}


REPORTED = ("teacher_arch", "student_arch", "batch_size", "teacher_epochs", "gen_epochs", "gen_iters", "k",
            "anchor_epochs", "invert_steps", "mixup_epochs")
PAPER_BUDGETS = dict(teacher_epochs=2, gen_epochs=1, gen_iters=10, anchor_epochs=2, mixup_epochs=2, invert_steps=10,
                     teacher_init="scratch", student_init="scratch")  # the paper's architectures, no ImageNet file needed


def timed_run(config, out: Path):
    "Run `config` into `out`; print each stage's seconds and images per second, and the accuracies."
    start = time.perf_counter()
    results = run(config, out, progress=False)
    total = time.perf_counter() - start
    (student_split,) = json.loads((out / "splits.json").read_text())["student"].values()
    n_train = len(student_split["train"])
    for stage, images in stage_images(config, n_train).items():
        seconds = results["stages"][stage]["seconds"]
        print(f"stage {stage}: {seconds:.1f} s, {images / seconds:,.0f} images/s", flush=True)
    print(f"run {total:.1f} s in all (teacher included); student top-1 {results['student']['acc']:.4f}, "
          f"teacher top-1 {results['teacher']['acc']:.4f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--setting", default="HP-M")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--decode-images", type=int, default=3000)
    parser.add_argument("--office-per-class", type=int, default=30)
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device {device} ({name}), torch {torch.__version__}, precision {args.precision}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = {f"{args.preset} preset on DigitShift {args.setting}":
                    make_config(args.preset, setting=args.setting, device=args.device, precision=args.precision),
                # the paper's architectures and batch size at a few stage budgets, on 31 classes of Office-31's shape
                f"paper preset on a synthetic Office-31 tree, AW-D, {args.office_per_class} images per class":
                    make_config("paper", dataset="office31", root=str(synthetic_benchmark("office31", tmp / "office31", args.office_per_class)),
                                setting="AW-D", device=args.device, precision=args.precision, **PAPER_BUDGETS)}
        for title, config in jobs.items():
            print(f"== {title}: " + ", ".join(f"{k} {getattr(config, k)}" for k in REPORTED), flush=True)
            timed_run(config, (args.out or tmp) / title.split()[0])
    throughput = Path(__file__).with_name("throughput.py")
    subprocess.run([sys.executable, str(throughput), "--reference", "--device", args.device], check=True)
    script = Path(__file__).with_name("decode_once_benchmark.py")
    subprocess.run([sys.executable, str(script), "--images", str(args.decode_images)], check=True)


if __name__ == "__main__":
    main()
