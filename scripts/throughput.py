"""Throughput of AuG-KD's three stages for a config: seconds per stage-1 iteration, per anchor epoch and per
mixup epoch, and images per second in each.

    python scripts/throughput.py [--preset default] [--set FIELD=VALUE ...] [--iters 20] [--epochs 2] [--device auto]
    python scripts/throughput.py --reference      # the reference AuG-KD code's architectures and budgets
    python scripts/throughput.py --reference --reference-code DIR   # and the reference code's own stage 1, side by side

It times a slice of each stage (`--iters` stage-1 iterations after one warm-up iteration, `--epochs`
anchor and mixup epochs, and one epoch of encoder inversion, per step, when the config inverts) on
DigitShift HP-M's splits with a teacher of the config's architecture and stem at random weights
(throughput does not depend on what the weights are), so it needs no trained teacher. `--reference`
sets what the reference code runs: ResNet-18 teacher and student with torchvision's standard stems,
latent 100, batch 64, k = 5, and the method as it states it (`AUGKD_REFERENCE`: no inversion, no
hand-over); on a 2-core CPU it needed 3.1-3.3 s per stage-1 iteration, about 11 s per
anchor epoch and about 18 s per mixup epoch (METHOD's measurement; 500 training images). Machines of
this kind differ from day to day, so with `--reference-code DIR` (a checkout of the reference repository,
which the script never downloads) the reference code's own stage 1 is timed in the same run, on the same
machine, for the same number of iterations, and its stage-1 figure replaces the recorded one (both
sides on the CPU). Prints one Markdown table row per stage.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

import torch

from augkd.anchor import invert_encoder, train_anchor
from augkd.data import load_setting
from augkd.generator import train_generator
from augkd.mixup import train_mixup
from augkd.models import Normalized, create_model, to_device
from augkd.pipeline import build_models
from augkd.stages import AUGKD_REFERENCE, make_config
from augkd.train import batches
from augkd.devices import resolve_device

REFERENCE = dict(teacher_arch="resnet18", student_arch="resnet18", teacher_stem="standard", student_stem="standard",
                 latent_size=100, batch_size=64, k=5, gen_width=256, enc_width=64, enc_channels=256, **AUGKD_REFERENCE)
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
    stage1 = lambda n: train_generator(teacher, student, generator, encoder, config, gen_epochs=1, gen_iters=n,
                                       progress=False)
    stage1(1)  # warm-up: the first passes of new shapes pick their kernels
    steps = len(batches(splits.student_train, config.batch_size))
    inversion = [("stage 2, encoder inversion", "step", steps, n_train,
                  lambda: invert_encoder(teacher, generator, encoder, splits.student_train, 1, config.batch_size, config.lr_inv,
                                         config.w_inv_feat, config.beta, config.precision, progress=False))
                 ] if config.invert_epochs or config.invert_steps else []
    timed = []
    for stage, unit, units, images, train in [
            ("stage 1", "iteration", iters, iters * config.batch_size * (1 + config.k),
             lambda: stage1(iters)), *inversion,
            ("stage 2", "epoch", epochs, epochs * n_train,  # anchor epochs alone: the inversion has its own row
             lambda: train_anchor(teacher, generator, encoder, anchor, **domain, config=config, anchor_epochs=epochs,
                                  invert_epochs=0, invert_steps=0, progress=False)),
            ("stage 3", "epoch", epochs, epochs * 2 * n_train,
             lambda: train_mixup(teacher, student, generator, encoder, anchor, **domain, config=config, mixup_epochs=epochs,
                                 progress=False))]:
        start = time.perf_counter(); train(); seconds = time.perf_counter() - start
        timed.append((stage, unit, seconds / units, images / seconds))
    return timed


def reference_modules(latent_size: int = 100, classes: int = 10) -> tuple:
    """The reference code's teacher and student (torchvision ResNet-18s), encoder and generator as its `main.py` builds them,
    at random weights (seeded); its checkout must be on `sys.path`."""
    from models.generator import Encoder, Generator
    from torchvision.models import get_model
    torch.manual_seed(0)
    teacher, student = (get_model("resnet18", num_classes=classes) for _ in range(2))
    conv = dict(kernel_size=3, padding=1, stride=1)
    encoder = Encoder(3, classes, latent_size, [64, 128, 256], 32, scale_strategy=[0.5, 0.5], **conv)
    decoder = Generator(img_size=32, latent_size=latent_size, num_classes=classes, in_channels=3, hidden_dims=[256, 128, 64],
                        scale_strategy=[2, 2], **conv)
    return teacher, student, encoder, decoder


def reference_stage1(code: str, iters: int, batch_size: int = 64, latent_size: int = 100, classes: int = 10) -> float:
    """Seconds per stage-1 iteration of the reference code's own stage 1 (`utils.trainer.df_train`, with its
    generator, encoder, losses and torchvision ResNet-18s at random weights) on the CPU, from a checkout at
    `code`. Its loop runs `range(200)` iterations per epoch: the harness times the first `iters` after one
    warm-up iteration, then stops the function (before its validation and checkpoint)."""
    if not (Path(code) / "utils" / "trainer.py").is_file():
        raise SystemExit(f"{code} is not a checkout of the reference AuG-KD code (it has no utils/trainer.py)")
    sys.path.insert(0, str(Path(code).resolve()))
    import utils.trainer as trainer
    from datasets.config import Datasets
    from utils.criteria import Accuracy, CVAELoss, DecoderLoss, KLDivLoss
    stamps = []

    class Enough(Exception): pass

    class Bar:
        "What `df_train` needs of tqdm: iteration, and a description it sets; its 200-iteration loop is timed."
        def __init__(self, iterable, *args, **kwargs): self.iterable = iterable
        def set_description(self, *args, **kwargs): pass
        def __len__(self): return len(self.iterable)
        def __iter__(self):
            for item in self.iterable:
                if isinstance(self.iterable, range):
                    stamps.append(time.perf_counter())
                    if len(stamps) > iters + 1: raise Enough
                yield item

    trainer.tqdm = Bar
    teacher, student, encoder, decoder = reference_modules(latent_size, classes)
    optimizers = (torch.optim.Adam(decoder.parameters(), 1e-3), torch.optim.Adam(student.parameters(), 1e-3, weight_decay=1e-4),
                  torch.optim.Adam(encoder.parameters(), 1e-4))
    schedulers = tuple(torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=1) for o in optimizers)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(8, 3, 32, 32), torch.arange(8) % classes), batch_size=8)
    args = argparse.Namespace(dataset=Datasets.CIFAR10, batch_size=batch_size, latent_size=latent_size, model="student",
                              loader_kwargs={"batch_size": batch_size}, log_dir=tempfile.mkdtemp())
    try:
        trainer.df_train(teacher, student, encoder, decoder, (DecoderLoss(t=1), KLDivLoss(), CVAELoss()), optimizers, schedulers,
                         1, (val, Accuracy(), lambda current, best: True), args, device="cpu")
    except Enough: pass
    finally: torch.autograd.set_detect_anomaly(False)  # df_train turns it on for the whole process
    return (stamps[-1] - stamps[1]) / (len(stamps) - 2)


def reference_stages(code: str, epochs: int, train, val, batch_size: int = 64, latent_size: int = 100, classes: int = 10) -> dict:
    """Seconds per epoch of the reference code's own stages 2 and 3 (`utils.trainer.train` for an epoch's steps, then
    `utils.trainer.validate`, as its `run` does) on the CPU, from a checkout at `code`, with its AnchorNet, generator,
    encoder, losses and ResNet-18s at random weights, over `train` and `val` (augkd `Domain`s) held in memory as tensors:
    its image loader (PIL decoding in worker processes) is not timed. Each stage is timed over `epochs` epochs after
    one warm-up epoch."""
    sys.path.insert(0, str(Path(code).resolve()))
    import utils.trainer as trainer
    from datasets.config import Datasets
    from models.anchor_net import AnchorNet
    from utils.criteria import Accuracy, AnchorLoss, Compose, DistillLoss, TopKAccuracy
    from utils.scheduler import LinearScheduler
    teacher, student, encoder, decoder = reference_modules(latent_size, classes)
    anchor = AnchorNet(latent_size=latent_size, num_classes=classes)
    loader = lambda d, shuffle: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(d.images, d.labels), batch_size=batch_size, shuffle=shuffle)
    args = argparse.Namespace(dataset=Datasets.CIFAR10, batch_size=batch_size, latent_size=latent_size, ablation=trainer.Ablation.NoAblation,
                              baseline=trainer.Baseline.NoBaseline, cmd=None, scheduler=LinearScheduler(epochs + 1, 0.6, 0.2))
    a_opt, s_opt = torch.optim.Adam(anchor.parameters(), 1e-3), torch.optim.Adam(student.parameters(), 1e-3, weight_decay=1e-4)
    stages = {"stage 2": dict(model=anchor, criterion=AnchorLoss(mode="energy", t=1, invariant=0.25), optimizer=a_opt,
                              scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(a_opt, T_max=epochs), teacher=teacher,
                              encoder=encoder, decoder=decoder, model_name="anchor",
                              eval_metrics=Compose([AnchorLoss(mode="energy", t=1, invariant=0.25)])),  # as its `run` wraps it
              "stage 3": dict(model=student, criterion=DistillLoss(t=10), optimizer=s_opt, scheduler=torch.optim.lr_scheduler.ConstantLR(s_opt),
                              teacher=teacher, encoder=encoder, decoder=decoder, anchor=anchor, model_name="resnet18",
                              eval_metrics=Compose([Accuracy(), TopKAccuracy(3), TopKAccuracy(5)]))}
    seconds = {}
    for stage, kw in stages.items():
        args.model, metrics = kw.pop("model_name"), kw.pop("eval_metrics")
        stamps = []
        for epoch in range(epochs + 1):
            args.s = args.scheduler.threshold(epoch)
            stamps.append(time.perf_counter())
            trainer.train(epoch, loader=loader(train, True), eval_metrics=metrics, args=args, device="cpu", show_progress=False, **kw)
            trainer.validate(kw["model"], metrics, loader(val, False), teacher=teacher, encoder=encoder, decoder=decoder, args=args,
                             device="cpu", show_progress=False)
        stamps.append(time.perf_counter())
        seconds[stage] = (stamps[-1] - stamps[1]) / epochs
    return seconds


def count_flops(fn) -> int:
    "Floating-point operations `fn()` performs, as `torch.utils.flop_counter.FlopCounterMode` counts them (matmuls and convolutions)."
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter: fn()
    return counter.get_total_flops()


def rate(fn, repeats: int) -> float:
    "FLOP/s of `fn()` (its FLOPs by `count_flops`), timed over `repeats` calls after one warm-up call."
    flops = count_flops(fn)
    fn()
    start = time.perf_counter()
    for _ in range(repeats): fn()
    return flops * repeats / (time.perf_counter() - start)


def roofline(config, seconds_per_iter: float, repeats: int = 10) -> dict:
    """Stage 1's achieved FLOP/s against what this machine reaches on the same convolutions, in float32: the FLOPs of one
    stage-1 iteration (`count_flops`: a 2-iteration epoch's less a 1-iteration epoch's, its steps alone) over its
    measured `seconds_per_iter`, beside the FLOP/s of its parts run alone in a tight loop at the config's batch size
    (a forward and backward pass of the ResNet-18, and of the generator into the encoder) and of a 2048 x 2048 matrix
    product (the dense peak PyTorch reaches here). The best of these is the peak stage 1 is set against."""
    splits = load_setting(config.setting, seed=config.seed, shots=config.shots)
    torch.manual_seed(0)
    teacher = Normalized(create_model(config.teacher_arch, len(splits.classes), config.image_size, stem=config.teacher_stem),
                         [0.5] * 3, [0.25] * 3).eval()
    models = build_models(config, len(splits.classes), teacher, "cpu")
    generator, encoder = models["generator"], models["encoder"]
    stage1 = lambda n: count_flops(lambda: train_generator(teacher, models["student"], generator, encoder, config, gen_epochs=1,
                                                           gen_iters=n, progress=False))
    iteration = stage1(2) - stage1(1)
    net = create_model(config.student_arch, len(splits.classes), config.image_size, stem=config.student_stem)
    x, z = torch.rand(config.batch_size, 3, config.image_size, config.image_size), torch.randn(config.batch_size, config.latent_size)
    y = torch.arange(config.batch_size) % len(splits.classes)
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    parts = {"resnet18_pass": rate(lambda: net(x).sum().backward(), repeats),
             "generator_encoder_pass": rate(lambda: encoder(generator(z), y)[0].sum().backward(), repeats),
             "gemm_2048": rate(lambda: a @ b, repeats)}
    achieved = iteration / seconds_per_iter
    peak = max(parts.values())
    return {"stage1_flops_per_iter": iteration, "stage1_gflops": achieved / 1e9, **{k + "_gflops": v / 1e9 for k, v in parts.items()},
            "of_peak": achieved / peak, "peak": max(parts, key=parts.get), "threads": torch.get_num_threads()}


def like_for_like(code: str, iters: int, epochs: int) -> dict:
    """Both sides in float32 on this CPU, back to back in one process: augkd's stages under the reference's architectures
    and budgets (`AUGKD_REFERENCE`, `throughput`), then the reference code's own stage 1 with its anomaly detection off
    (a patch for this timing only: `torch.autograd.set_detect_anomaly` made a no-op while it runs) and on (as its
    accuracy runs have it), and its stages 2 and 3 (`reference_stages`); and stage 1's roofline (`roofline`)."""
    config = make_config("default", device="cpu", **{**REFERENCE, "precision": "fp32"})
    ours = {stage: seconds for stage, _, seconds, _ in throughput(config, iters, epochs)}
    splits = load_setting(config.setting, seed=config.seed, shots=config.shots)
    anomaly = torch.autograd.set_detect_anomaly
    torch.autograd.set_detect_anomaly = lambda mode=True, check_nan=True: None  # the timing-only patch
    try: plain = reference_stage1(code, iters)
    finally: torch.autograd.set_detect_anomaly = anomaly
    detected = reference_stage1(code, iters)
    theirs = {"stage 1": plain, **reference_stages(code, epochs, splits.student_train, splits.student_val)}
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "CPU") \
        if Path("/proc/cpuinfo").exists() else "CPU"
    return {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()}-core {cpu}, torch {torch.__version__}",
            "threads": torch.get_num_threads(), "iters": iters, "epochs": epochs, "augkd": ours, "reference": theirs,
            "reference_stage1_anomaly_detection": detected, "roofline": roofline(config, ours["stage 1"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--reference", action="store_true", help="the reference code's architectures and budgets")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config fields over the preset")
    parser.add_argument("--iters", type=int, default=20, help="stage-1 iterations to time")
    parser.add_argument("--epochs", type=int, default=2, help="anchor and mixup epochs to time")
    parser.add_argument("--reference-code", metavar="DIR", help="a checkout of the reference code: time its own stage 1 too (CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE (as `nbs/results/speed.json` keeps them)")
    parser.add_argument("--like-for-like", action="store_true", help="with --reference-code: both sides in float32, every stage of "
                        "the reference code timed back to back (its anomaly detection off, and on for stage 1), and stage 1's roofline")
    args = parser.parse_args()
    if args.like_for_like:
        if not args.reference_code: raise SystemExit("--like-for-like needs --reference-code DIR (a checkout of the reference code)")
        found = like_for_like(args.reference_code, args.iters, args.epochs)
        units = {"stage 1": "iteration", "stage 2": "epoch", "stage 3": "epoch"}
        print(f"float32, {found['threads']} threads; augkd with the reference's architectures and budgets, the reference code's own loops")
        print("| stage | augkd (s per unit) | reference code (s per unit) | reference / augkd |\n| --- | --- | --- | --- |")
        for stage, unit in units.items():
            ours, theirs = found["augkd"][stage], found["reference"][stage]
            print(f"| {stage} | {ours:.3f} per {unit} | {theirs:.3f} per {unit} | {theirs / ours:.2f}x |")
        r = found["roofline"]
        print(f"reference stage 1 with its anomaly detection on: {found['reference_stage1_anomaly_detection']:.3f} s per iteration")
        print(f"roofline: stage 1 {r['stage1_flops_per_iter'] / 1e9:.1f} GFLOP per iteration, {r['stage1_gflops']:.1f} GFLOP/s achieved "
              f"({100 * r['of_peak']:.0f}% of the best below); alone: a ResNet-18 pass {r['resnet18_pass_gflops']:.1f} GFLOP/s, "
              f"G into E {r['generator_encoder_pass_gflops']:.1f} GFLOP/s, a 2048^2 matrix product {r['gemm_2048_gflops']:.1f} GFLOP/s")
        if args.json: Path(args.json).write_text(json.dumps(found, indent=1))
        return
    args.reference = args.reference or bool(args.reference_code)
    if args.reference_code: args.device = "cpu"  # the harness runs the reference code on the CPU: so does augkd's side
    fields = {**(REFERENCE if args.reference else {}), **dict((k, value(v)) for k, v in (s.split("=", 1) for s in args.set))}
    config = make_config(args.preset, device=args.device, **fields)
    print(f"{'reference architectures and budgets' if args.reference else 'preset ' + args.preset} "
          f"{fields or ''} on {resolve_device(config.device)}, {torch.get_num_threads()} threads", flush=True)
    rows = throughput(config, args.iters, args.epochs)  # augkd first: the reference's stage 1 turns anomaly detection on
    reference = dict(REFERENCE_SECONDS)
    if args.reference_code:
        reference["stage 1"] = reference_stage1(args.reference_code, args.iters)
        print(f"the reference code's own stage 1, measured now: {reference['stage 1']:.3f} s per iteration", flush=True)
    print("| stage | seconds per | images/s |" + (" reference code | speed-up |" if args.reference else ""))
    print("| --- | --- | --- |" + (" --- | --- |" if args.reference else ""))
    records = []
    for stage, unit, seconds, rate in rows:
        row = f"| {stage} | {seconds:.3f} s per {unit} | {rate:,.0f} |"
        record = {"stage": stage, "seconds": round(seconds, 3), "unit": unit, "images_per_s": round(rate)}
        if args.reference:
            if stage not in reference: row += " - | - |"
            else:
                source = "measured now" if args.reference_code and stage == "stage 1" else "recorded, 2-core CPU"
                row += f" {reference[stage]:.2f} s per {unit} ({source}) | {reference[stage] / seconds:.1f}x |"
                record.update(reference_seconds=round(reference[stage], 3), reference_source=source, speedup=round(reference[stage] / seconds, 1))
        print(row, flush=True)
        records.append(record)
    if args.json: Path(args.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
