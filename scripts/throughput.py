"""Throughput of AuG-KD's three stages for a config: seconds per stage-1 iteration, per anchor epoch and per
mixup epoch, and images per second in each.

    python scripts/throughput.py [--preset default] [--set FIELD=VALUE ...] [--iters 20] [--epochs 2] [--device auto]
    python scripts/throughput.py --reference      # the reference AuG-KD code's architectures and budgets

It times a slice of each stage (`--iters` stage-1 iterations, `--epochs` anchor and mixup epochs) on
DigitShift HP-M's splits with a teacher of the config's architecture and stem at random weights
(throughput does not depend on what the weights are), so it needs no trained teacher. `--reference`
sets what the reference code runs: ResNet-18 teacher and student with torchvision's standard stems,
latent 100, batch 64, k = 5; on a 2-core CPU it needed 3.1-3.3 s per stage-1 iteration, about 11 s per
anchor epoch and about 18 s per mixup epoch (METHOD's measurement; 500 training images). Prints one
Markdown table row per stage.
"""
import argparse, time

import torch

from augkd.anchor import train_anchor
from augkd.data import load_setting
from augkd.generator import train_generator
from augkd.mixup import train_mixup
from augkd.models import Normalized, create_model, to_device
from augkd.pipeline import build_models, make_config
from augkd.train import resolve_device

REFERENCE = dict(teacher_arch="resnet18", student_arch="resnet18", teacher_stem="standard", student_stem="standard",
                 latent_size=100, batch_size=64, k=5, gen_width=256, enc_width=64, enc_channels=256)
REFERENCE_SECONDS = {"stage 1": 3.2, "stage 2": 11.0, "stage 3": 18.0}  # per iteration, per epoch, per epoch


def value(text: str):
    for kind in (int, float):
        try: return kind(text)
        except ValueError: pass
    return {"true": True, "false": False}.get(text.lower(), text)


def throughput(config, iters: int, epochs: int) -> list:
    "Rows (stage, unit, seconds per unit, images per second) for slices of the three stages under `config`."
    device = resolve_device(config.device)
    splits = load_setting(config.setting, seed=config.seed, shots=config.shots)
    n_classes, n_train = len(splits.classes), len(splits.student_train)
    torch.manual_seed(0)
    teacher = to_device(Normalized(create_model(config.teacher_arch, n_classes, config.image_size, stem=config.teacher_stem),
                                   [0.5] * 3, [0.25] * 3), device).eval()
    models = build_models(config, n_classes, teacher, device)
    student, generator, encoder, anchor = (models[n] for n in ("student", "generator", "encoder", "anchor"))
    domain = dict(train=splits.student_train, val=splits.student_val)
    timed = []
    for stage, unit, units, images, train in [
            ("stage 1", "iteration", iters, iters * config.batch_size * (1 + config.k),
             lambda: train_generator(teacher, student, generator, encoder, **{**config.stage_args(train_generator),
                                     "gen_epochs": 1, "gen_iters": iters}, progress=False)),
            ("stage 2", "epoch", epochs, epochs * n_train,
             lambda: train_anchor(teacher, generator, encoder, anchor, **domain, **{**config.stage_args(train_anchor),
                                  "anchor_epochs": epochs}, progress=False)),
            ("stage 3", "epoch", epochs, epochs * 2 * n_train,
             lambda: train_mixup(teacher, student, generator, encoder, anchor, **domain, **{**config.stage_args(train_mixup),
                                 "mixup_epochs": epochs}, progress=False))]:
        start = time.perf_counter(); train(); seconds = time.perf_counter() - start
        timed.append((stage, unit, seconds / units, images / seconds))
    return timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--reference", action="store_true", help="the reference code's architectures and budgets")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config fields over the preset")
    parser.add_argument("--iters", type=int, default=20, help="stage-1 iterations to time")
    parser.add_argument("--epochs", type=int, default=2, help="anchor and mixup epochs to time")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    fields = {**(REFERENCE if args.reference else {}), **dict((k, value(v)) for k, v in (s.split("=", 1) for s in args.set))}
    config = make_config(args.preset, device=args.device, **fields)
    print(f"{'reference architectures and budgets' if args.reference else 'preset ' + args.preset} "
          f"{fields or ''} on {resolve_device(config.device)}, {torch.get_num_threads()} threads", flush=True)
    print("| stage | seconds per | images/s |" + (" reference code (2-core CPU) | speed-up |" if args.reference else ""))
    print("| --- | --- | --- |" + (" --- | --- |" if args.reference else ""))
    for stage, unit, seconds, rate in throughput(config, args.iters, args.epochs):
        row = f"| {stage} | {seconds:.3f} s per {unit} | {rate:,.0f} |"
        if args.reference: row += f" {REFERENCE_SECONDS[stage]:.1f} s per {unit} | {REFERENCE_SECONDS[stage] / seconds:.1f}x |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
