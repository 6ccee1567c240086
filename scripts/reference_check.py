"""augkd beside the reference AuG-KD code itself: the same data, the same teacher file, the same architectures
and budgets, in one script.

    python scripts/reference_check.py --reference DIR --setting HP-M --seeds 3 [--out DIR]

`DIR` is a checkout of the reference repository (github.com/IshiKura-a/AuG-KD) that you provide: the script never
downloads anything, and runs the reference with the Python that runs it (it needs the reference's own
requirements, pandas and tqdm among them). The steps, each kept when finished, so a second call resumes:

1. **Data**: a DigitShift setting's teacher domains (whole), its student domain's pool (the `--shots` training and
   the validation images of augkd's seed-0 split) and its test split, as the PNG image folders the reference reads
   (`OUT/data`). With `--student-domain POOL --student-test TEST --teacher-domains A B` your folders are used instead.
2. **The reference, patched**: a copy of the checkout (`OUT/reference-code`) with the minimal patches in `PATCHES`,
   each printed with why it is needed; the checkout itself is left alone.
3. **One teacher per seed**, trained independently (seeded by the seed) and handed to every side of that seed as one
   file in the reference's format (a plain torchvision ResNet-18 state dict, inputs normalized as the reference
   normalizes them; augkd reads it with `--teacher FILE --teacher-norm ...`). `--teacher-recipe augkd` (the default):
   augkd's teacher recipe (`augkd.teacher.train_teacher`: its split of the teacher domains, shift and colour
   augmentation, `--teacher-epochs` 6) from the stand-in pretraining corpus (`--teacher-init letters`), a teacher
   that transfers; `--teacher-recipe reference`: the reference code's own (`main.py train_teacher`, from scratch
   offline, 4 epochs), right on about a fifth of the photos of HP-M. Each teacher's `teacher.json` holds its file's
   SHA-256 and its top-1 on the student domain (test folder and labeled pool), as augkd measures it.
4. **Per seed**, `--jobs` cells at a time (each with its share of the cores): the reference's main job; `augkd_ref` (`augkd run --reference`) and `augkd` (`augkd run`), both with
   the reference's architectures (torchvision ResNet-18 teacher and student, standard stems, from scratch: no
   ImageNet weights here), float32 arithmetic as the reference's (augkd's `auto` takes bf16 on CPUs that have it),
   latent size, batch size, k and budgets (`--gen-epochs` times 200 stage-1 iterations, as
   the reference's loop has them; `--anchor-epochs`; `--mixup-epochs`) and augkd's learning rates, alpha, a and b
   given to the reference too. Asked for with `--sides`, `augkd_ce` is `augkd_ref` with a stage 3 of cross-entropy alone
   (`u = 1`: what the reference's stage 3 computes), its stages 1 and 2 reused from `augkd_ref`'s run; `counterfactual`
   is the reference with one more patch (`COUNTERFACTUAL`, in its own copy `OUT/reference-code-counterfactual`): its
   stage-3 second pass through the teacher instead of the student, nothing else changed, the direct test of the
   explanation of the reference - `augkd_ref` gap. With `--counterfactual-stage3` it runs stage 3 only, through the
   reference's own resume path from the reference side's stage-1 and stage-2 checkpoints of its seed (`RESUME_PATCHES`
   let that path load them): stages 1 and 2 are then shared exactly, stage 3's random stream starts afresh, and the
   side takes a fraction of its time (4-7 minutes a seed here, against 33-37 for the reference's whole job).
5. **One table** (`OUT/table.md`, rows in `OUT/rows.json`): per side, mean and spread over the seeds of the
   teacher's top-1 on the test split, the student's top-1/3/5, the stage-1 student's top-1 on the test split, the
   wall time and each stage's seconds per iteration or epoch. With `--json FILE` the rows (each with its teacher file's
   SHA-256, the teacher's top-1 and the machine), the budgets and the patches are also written to `FILE` after every
   finished cell, and rows already in `FILE` count as finished: a run on a new machine goes on from committed results.
   A seed's teacher trained again on another machine need not come out the same (bf16 and thread counts change the
   arithmetic), so the sides of a seed share a teacher file (`teacher_sha256` says which), seeds from different
   machines may not.

The full run is a benchmark (hours on two CPU cores); `tests/test_benchmark_scripts.py` tests the harness's parts
(folders, patches, reading the reference's log, the table) on small inputs.
"""
import argparse, datetime, hashlib, json, os, re, shutil, statistics, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STAGE1_ITERS = 200  # the reference's stage-1 loop runs `range(200)` iterations per epoch
REFERENCE_NORM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # its `--dataset cifar10` config: 10 classes, 32x32
sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import REFERENCE  # noqa: E402  the reference code's architectures, with the method page's switches
from augkd.files import atomic_write_text  # noqa: E402
from augkd.stages import AUGKD_REFERENCE  # noqa: E402
ARCH = {k: v for k, v in REFERENCE.items() if k not in AUGKD_REFERENCE}
from augkd.methods import augkd_variants  # noqa: E402
# augkd's sides are its registered variants, run by name (`augkd run --method NAME`), and one variant of a variant:
SIDE_ARGS = {**{m: ["--method", m] for m in augkd_variants()},
             "augkd_code_norm": ["--method", "augkd_code", "--raw-input", "normalized"]}  # augkd_code with its raw half normalized
SIDES = ("reference", "augkd_ref", "augkd", *[s for s in SIDE_ARGS if s not in ("augkd_ref", "augkd")], "counterfactual")
TEACHER_RECIPES = {"augkd": 6, "reference": 4}  # recipe -> its default epochs

# (file, text, replacement, how many times, why): the least that running the reference here needs
PATCHES = [
    ("main.py", "import wandb\n", "", 1,
     "an unused import of a logging service (wandb) that is not installed here; its one call is commented out"),
    ("models/__init__.py", "weights=list(get_model_weights(name))[-1]", "weights=None", 1,
     "it downloads ImageNet weights for every student and teacher; offline, both start from scratch (as augkd's side does)"),
    ("utils/trainer.py", "device: str = 'cuda:0'", "device: str = 'cuda:0' if torch.cuda.is_available() else 'cpu'", 5,
     "its device is hard-coded to CUDA; the CPU is used where there is no GPU"),
    ("utils/trainer.py", "torch.load(os.path.join(args.log_dir, ckpt_dir))",
     "torch.load(os.path.join(args.log_dir, ckpt_dir), weights_only=False)", 2,
     "torch >= 2.6 loads only weights by default; its own stage checkpoints also hold an enum and optimizer states"),
]
# the counterfactual side's one more patch: the test of the explanation of the reference - augkd_ref gap
COUNTERFACTUAL = ("utils/trainer.py", "                    outputs = model(x)\n                    t_outputs = model(x)\n",
                  "                    outputs = model(x)\n                    t_outputs = teacher(x)\n", 1,
                  "the counterfactual side only: stage 3's second pass goes through the teacher (`teacher(x)`) instead of the "
                  "student (`model(x)`), so its KD term distills the teacher; nothing else changes")
REFERENCE_SIDES = {"reference": PATCHES, "counterfactual": PATCHES + [COUNTERFACTUAL]}  # the sides that run the reference's code
# with --counterfactual-stage3 the counterfactual goes through the reference's own resume path, whose loads need the
# same plumbing as the checkpoints patch above
RESUME_PATCHES = [("main.py", f"torch.load(args.{name})", f"torch.load(args.{name}, weights_only=False)", count,
                   f"the counterfactual's stage 3 from the reference's checkpoints only: its resume path loads {what} "
                   "(torch >= 2.6 loads only weights by default; its checkpoints hold an enum and optimizer states)")
                  for name, count, what in (("resume", 1, "the best AnchorNet's checkpoint (--resume)"),
                                            ("g_dir", 6, "stage 1's generator, encoder and student (--g_dir)"))]


def mean_sd(values: list) -> str:
    "`mean +- sd` of `values` (sample spread; the mean alone for one value), or `-` for none."
    values = [v for v in values if v is not None]
    if not values: return "-"
    return f"{statistics.mean(values):.1f}" + (f" +- {statistics.stdev(values):.1f}" if len(values) > 1 else "")


def write_folders(setting: str, shots: int, out) -> dict:
    """A DigitShift setting as image folders under `out`: `teacher/<domain>` (each teacher domain whole), `pool` (the
    student domain's training and validation images of augkd's seed-0 split at `shots`) and `test`. Returns the paths."""
    from augkd.data import digitshift, get_setting, load_setting, write_image_folder, concat_domains
    out = Path(out)
    s, domains = get_setting(setting), digitshift()
    paths = {"teachers": [out / "teacher" / name for name in s.teacher_domains], "pool": out / "pool", "test": out / "test"}
    if (out / "done.json").exists(): return paths
    if out.exists(): shutil.rmtree(out)
    for name, path in zip(s.teacher_domains, paths["teachers"]): write_image_folder(domains[name], path)
    splits = load_setting(setting, seed=0, shots=shots)
    write_image_folder(concat_domains([splits.student_train, splits.student_val], "pool"), paths["pool"])
    write_image_folder(splits.student_test, paths["test"])
    (out / "done.json").write_text(json.dumps({"setting": setting, "shots": shots}))
    return paths


def apply_patches(checkout, dest, patches=PATCHES) -> list:
    """Copy the reference checkout to `dest` (its .git left out) and apply `patches`, unless `dest` already holds that copy
    (recorded in `dest/PATCHED.json`); returns `(file, why)` per patch.
    Raises SystemExit, naming the file, when a patch's text is not found as often as expected (another version)."""
    checkout, dest = Path(checkout), Path(dest)
    if not (checkout / "main.py").is_file() or not (checkout / "utils" / "trainer.py").is_file():
        raise SystemExit(f"{checkout} is not a checkout of the reference AuG-KD code (no main.py and utils/trainer.py)")
    files = sorted({file for file, *_ in patches})
    record = json.dumps({"checkout": str(checkout.resolve()), "patches": patches,
                         "files": {f: hashlib.sha256((checkout / f).read_bytes()).hexdigest() for f in files if (checkout / f).exists()}})
    if (dest / "PATCHED.json").exists() and (dest / "PATCHED.json").read_text() == record:  # a job may be running in it
        return [(file, why) for file, _, _, _, why in patches]
    if dest.exists(): shutil.rmtree(dest)
    shutil.copytree(checkout, dest, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    applied = []
    for file, old, new, count, why in patches:
        path = dest / file
        text = path.read_text()
        if text.count(old) != count:
            raise SystemExit(f"{checkout / file}: expected {count} x {old!r}, found {text.count(old)}; "
                             "is this another version of the reference code?")
        path.write_text(text.replace(old, new))
        applied.append((file, why))
    (dest / "PATCHED.json").write_text(record)
    return applied


_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - \w+ - "
_ACC = r"Acc = ([\d.]+) Acc@3 = ([\d.]+) Acc@5 = ([\d.]+)"


def parse_reference_log(text: str) -> dict:
    """Figures of one reference main job from what it printed (its logger's lines carry time stamps there): the teacher's top-1 on the test split (its stage 1
    validates the teacher there), the stage-1 student's top-1/3/5 on the test split (its last stage-1 epoch), the
    student's test top-1/3/5, and each stage's seconds from the lines' time stamps (stage 1: the teacher line to the
    last stage-1 line; stage 2: to the last AnchorLoss line; stage 3: to the test line, from its "Resume at Stage 2"
    line where it resumed after stage 2). Missing parts are None."""
    lines = []
    for line in text.splitlines():
        m = re.match(_STAMP, line)
        if m: lines.append((datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timestamp() + int(m[2]) / 1000, line[m.end():]))
    def last(pattern):
        found = [(t, re.search(pattern, msg)) for t, msg in lines if re.search(pattern, msg)]
        return found[-1] if found else (None, None)
    t0, teacher = last(r"^Teacher: " + _ACC)
    t1, stage1 = last(r"^Eval \[\d+/\d+\]: Decoder Loss.*" + _ACC)
    t2, _ = last(r"^Eval \[\d+/\d+\]:AnchorLoss")
    t3, test = last(r"^Test:" + _ACC)
    resumed, _ = last(r"^Resume at Stage 2, ")
    acc = lambda m: None if m is None else {"acc": float(m[1]), "acc3": float(m[2]), "acc5": float(m[3])}
    span = lambda a, b: None if a is None or b is None else b - a
    return {"teacher": acc(teacher), "stage1_student": acc(stage1), "student": acc(test),
            "stages": {"generator": span(t0, t1), "anchor": span(t1, t2), "mixup": span(t2 or t1 or resumed, t3)}}


def reference_teacher_args(paths: dict, out, epochs: int, lr: float, wd: float, batch_size: int, seed: int = 0) -> list:
    "The reference's `main.py train_teacher` arguments: ResNet-18, its 80/20 split of the teacher domains, seeded by `seed`."
    return ["--batch_size", str(batch_size), "--teacher", ARCH["teacher_arch"], "--dataset", "cifar10", "--log_dir", str(out),
            "--seed", str(seed), "train_teacher", "--t_lr", str(lr), "--t_wd", str(wd), "--t_epoch", str(epochs),
            "--t_mode", "auto_split", "--t_data", *map(str, paths["teachers"])]


def teacher_file(out, seed: int) -> Path:
    "Where seed `seed`'s teacher is kept: `out/teacher/sSEED/resnet18_ckpt.pt` (the reference's name for it)."
    return Path(out) / "teacher" / f"s{seed}" / f"{ARCH['teacher_arch']}_ckpt.pt"


def augkd_teacher(paths: dict, seed: int, file, epochs: int = 6, init: str = "letters") -> dict:
    """Train seed `seed`'s teacher by augkd's recipe (`train_teacher` on the teacher folders' seeded split, from `init`,
    inputs normalized as the reference normalizes them) and write its plain state dict to `file` (atomically); its report."""
    from augkd.data import folder_splits
    from augkd.files import atomic_save
    from augkd.teacher import train_teacher
    splits = folder_splits(paths["pool"], seed, 0, paths["test"], paths["teachers"])
    model, report = train_teacher(splits, ARCH["teacher_arch"], epochs, seed, stem=ARCH["teacher_stem"], init=init,
                                  norm=REFERENCE_NORM, progress=False)
    atomic_save(model.net.state_dict(), file)
    return {k: report[k] for k in ("epochs", "seed", "seconds", "val")} | {"init": init}


def teacher_scores(file, paths: dict) -> dict:
    "A teacher file's top-1/3/5 on the student domain's test folder and labeled pool, its inputs normalized as the reference's."
    from augkd.data import image_folder_domain
    from augkd.teacher import load_teacher_file
    from augkd.metrics import evaluate
    classes = sorted(p.name for p in Path(paths["test"]).iterdir() if p.is_dir())
    model, _ = load_teacher_file(file, ARCH["teacher_arch"], classes, REFERENCE_NORM, stem=ARCH["teacher_stem"], device="cpu")
    return {part: evaluate(model, image_folder_domain(paths[part], classes=classes)) for part in ("test", "pool")}


def make_teacher(recipe: str, paths: dict, seed: int, out, epochs: int, init: str, code, config) -> dict:
    """Seed `seed`'s teacher (`teacher_file`) by `recipe`, unless its `teacher.json` is there; its record: recipe, epochs,
    SHA-256 of the file, top-1 on the student domain (`teacher_scores`), seconds, machine."""
    file = teacher_file(out, seed)
    record = file.parent / "teacher.json"
    if record.exists(): return json.loads(record.read_text())
    file.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if recipe == "augkd": extra = augkd_teacher(paths, seed, file, epochs, init)
    else:
        extra = {"seed": seed, "epochs": epochs, "init": "scratch"}
        _run([sys.executable, "main.py", *reference_teacher_args(paths, file.parent, epochs, config.lr_s, config.wd_s,
                                                                   config.batch_size, seed)], file.parent / "log.txt", cwd=code)
    done = {"recipe": recipe, **extra, "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
            "top1": teacher_scores(file, paths), "seconds": round(time.time() - start, 1), "machine": machine_name()}
    atomic_write_text(json.dumps(done, indent=1), record)
    return done


def reference_checkpoints(folder) -> list:
    """The arguments of the reference's own resume path that skip its stages 1 and 2 and load them from a finished main
    job in `folder` (its log folder inside): `--resume` the best anchor's `anchor_stat_ckpt.pt`, `--g_dir`
    stage 1's `df_stat_ckpt.pt` (the same modules its whole job's stage 3 started from). Raises SystemExit when `folder`
    holds no finished stage 2."""
    logs = [d for d in Path(folder).glob("*/") if (d / "anchor_stat_ckpt.pt").exists() and (d / "df_stat_ckpt.pt").exists()]
    if not logs: raise SystemExit(f"{folder} holds no stage-1 and stage-2 checkpoints of the reference (a row restored from a "
                                  "record has none): remove its row.json to run the reference's side again here")
    anchor, generator = logs[0] / "anchor_stat_ckpt.pt", logs[0] / "df_stat_ckpt.pt"
    return ["--resume", str(anchor), "--g_dir", str(generator)]  # its --a_dir is read only when resuming stage 3


def machine_name() -> str:
    "This machine in words: the GPU's name or the CPU's core count, and torch's version."
    import torch
    return f"{torch.cuda.get_device_name() if torch.cuda.is_available() else f'{os.cpu_count()}-core CPU'}, torch {torch.__version__}"


def reference_main_args(paths: dict, teacher, out, seed: int, config) -> list:
    "The reference's main job with `config`'s architectures, budgets, learning rates, alpha, a and b."
    return ["--teacher", config.teacher_arch, "--teacher_dir", str(teacher), "--student", config.student_arch,
            "--latent_size", str(config.latent_size), "--dataset", "cifar10", "--target", str(paths["pool"]),
            "--test", str(paths["test"]), "--lr", str(config.lr_s), "--wd", str(config.wd_s),
            "--epoch", str(config.mixup_epochs), "--batch_size", str(config.batch_size), "--seed", str(seed),
            "--d_lr", str(config.lr_g), "--e_lr", str(config.lr_e), "--g_epoch", str(config.gen_epochs),
            "--a_lr", str(config.lr_a), "--a_epoch", str(config.anchor_epochs), "--invariant", str(config.alpha),
            "--log_dir", str(out), "--postfix", f"s{seed}", "--a", str(config.a), "--b", str(config.b)]


def side_config(seed: int, paths: dict, shots: int, gen_epochs: int, anchor_epochs: int, mixup_epochs: int):
    "augkd's config of the comparison (the `default` preset's rates and switches, the reference's shapes and budgets)."
    from augkd.stages import make_config
    return make_config("default", seed=seed, student_domain=str(paths["pool"]), student_test=str(paths["test"]),
                       shots=shots, **ARCH, gen_epochs=gen_epochs, gen_iters=STAGE1_ITERS, anchor_epochs=anchor_epochs,
                       mixup_epochs=mixup_epochs)


def augkd_args(method: str, config, teacher, out) -> list:
    "`augkd run` arguments for the side `method` (`SIDE_ARGS`) with `config`'s fields and the reference's teacher file."
    args = ["run", "--preset", "default", "--out", str(out), "--report", "false", "--precision", "fp32"]  # as the reference computes
    for name in ("seed", "student_domain", "student_test", "shots", *ARCH, "gen_epochs", "gen_iters", "anchor_epochs", "mixup_epochs"):
        args += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    norm = ",".join(str(v) for part in REFERENCE_NORM for v in part)
    classes = ",".join(sorted(p.name for p in Path(config.student_domain).iterdir() if p.is_dir()))
    args += ["--teacher", str(teacher), "--teacher-norm", norm, "--teacher-classes", classes]
    return args + SIDE_ARGS[method]


def augkd_row(run_dir) -> dict:
    "One augkd run's figures: the teacher's and student's test top-1/3/5, the stage-1 student on the test split, stage seconds."
    import torch
    from augkd.pipeline import build_models, load_run
    from augkd.rundir import RunDir
    from augkd.metrics import evaluate
    results = json.loads((Path(run_dir) / "results.json").read_text())
    parts = load_run(run_dir)
    student = build_models(parts.config, len(parts.splits.classes), parts.teacher, names=("student",), initialize=False)["student"]
    student.load_state_dict(RunDir(run_dir).load_checkpoint("generator")["state"]["modules"]["student"])
    with torch.no_grad(): stage1 = evaluate(student.eval(), parts.splits.student_test)
    return {"teacher": results["teacher"], "student": results["student"], "stage1_student": stage1,
            "stages": {k: v["seconds"] for k, v in results["stages"].items()}}


# run with the reference code's folder as the working directory: its own modules rebuilt from its checkpoints
_REFERENCE_ANCHORS = """
import json, sys, torch
from pathlib import Path
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms.functional import normalize
from datasets.config import dataset_config, Datasets, get_transform
from models.anchor_net import AnchorNet
log_dir, teacher_file, pool, latent = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, sys.argv[5])
from throughput import reference_modules
config = dataset_config[Datasets.CIFAR10]
teacher, _, encoder, decoder = reference_modules(latent, config.num_classes)
stage1 = torch.load(Path(log_dir) / "df_stat_ckpt.pt", weights_only=False)
encoder.load_state_dict(stage1["encoder"]); decoder.load_state_dict(stage1["decoder"])
anchor = AnchorNet(latent_size=latent, num_classes=config.num_classes)
anchor.load_state_dict(torch.load(Path(log_dir) / "anchor_ckpt.pt", weights_only=False))
teacher.load_state_dict(torch.load(teacher_file))
for m in (encoder, decoder, anchor, teacher): m.eval()
torch.manual_seed(0)  # its encoder samples z even in eval mode
data = DataLoader(ImageFolder(pool, transform=get_transform(config.target_size, False, None)), batch_size=256)
sums = {"anchor_top1": 0.0, "anchor_energy": 0.0, "rec_top1": 0.0, "rec_energy": 0.0, "mask_open": 0.0}
n = 0
with torch.no_grad():
    for x, y in data:
        z = encoder(x, labels=y)
        z_a, mask = anchor(z, labels=y)
        for key, latents in (("anchor", z_a), ("rec", z)):
            logits = teacher(normalize(decoder(latents, labels=y), *config.normalize))
            sums[key + "_top1"] += (logits.argmax(1) == y).sum().item()
            sums[key + "_energy"] += -torch.logsumexp(logits, 1).sum().item()
        sums["mask_open"] += mask.mean(1).sum().item()
        n += len(y)
print(json.dumps({k: v / n for k, v in sums.items()}))
"""


def reference_anchor_figures(code, folder, teacher, pool, latent_size: int) -> dict:
    """Stage 2 on the reference's side, read from its checkpoints in `folder` (its stage-1 `df_stat_ckpt.pt` and best
    `anchor_ckpt.pt`): on every image of the labeled `pool`, the teacher's top-1 and mean energy (-logsumexp of its
    logits) on the anchor images G(A(E(x, y))) and on G(E(x, y)), and the mask's mean; None without the checkpoints."""
    logs = [d for d in Path(folder).glob("*/") if (d / "anchor_ckpt.pt").exists() and (d / "df_stat_ckpt.pt").exists()]
    if not logs: return None
    done = subprocess.run([sys.executable, "-c", _REFERENCE_ANCHORS, str(logs[0]), str(teacher), str(pool), str(latent_size),
                           str(Path(__file__).resolve().parent)],
                          cwd=code, capture_output=True, text=True)
    if done.returncode: raise SystemExit(f"reading the reference's stage 2 in {logs[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def augkd_anchor_figures(run_dir, pool) -> dict:
    """Stage 2 on augkd's side, from its run: the figures of `reference_anchor_figures` on the same `pool` images, with the
    AnchorNet in eval mode as stage 3 uses it (a run without stage 2 has none: None)."""
    import torch
    from augkd.anchor import anchor_views
    from augkd.data import image_folder_domain
    from augkd.pipeline import load_run
    parts = load_run(run_dir)
    if parts.anchor is None: return None
    domain = image_folder_domain(pool, classes=parts.splits.classes)
    torch.manual_seed(0)
    sums, n = dict.fromkeys(("anchor_top1", "anchor_energy", "rec_top1", "rec_energy", "mask_open"), 0.0), 0
    for m in (parts.teacher, parts.generator, parts.encoder, parts.anchor): m.eval()
    with torch.no_grad():
        for i in range(0, len(domain.labels), 256):
            x, y = domain.images[i:i + 256], domain.labels[i:i + 256]
            views = anchor_views(parts.generator, parts.encoder, parts.anchor, x, y)
            for key, images in (("anchor", views["x_a"]), ("rec", views["x_rec"])):
                logits = parts.teacher(images).float()
                sums[key + "_top1"] += (logits.argmax(1) == y).sum().item()
                sums[key + "_energy"] += -torch.logsumexp(logits, 1).sum().item()
            sums["mask_open"] += views["mask"].mean(1).sum().item()
            n += len(y)
    return {k: v / n for k, v in sums.items()}


def per_unit(side: dict, config) -> dict:
    "Each stage's seconds per stage-1 iteration, anchor epoch and mixup epoch."
    units = {"generator": config.gen_epochs * STAGE1_ITERS, "anchor": config.anchor_epochs, "mixup": config.mixup_epochs}
    return {k: None if side["stages"].get(k) is None else side["stages"][k] / units[k] for k in units}


def table(rows: list, config) -> str:
    """Markdown tables of `rows` (one per side and seed): per side, mean +- sd over its seeds (the teacher's top-1 as its
    file is read with the reference's normalization, and as the side's own evaluation reports it; stage 2's anchors as
    `reference_anchor_figures` measures them; each stage's time); then each side's paired difference to the reference
    over the seeds both have (they share each seed's teacher), with its 95% Student's t interval."""
    from augkd.bench import paired_difference
    pct = lambda rs, part, key: mean_sd([100 * r[part][key] if r.get(part) else None for r in rs])
    lines = ["| side | seeds | teacher top-1 (file) | teacher top-1 (side's eval) | student top-1 | top-3 | top-5 | stage-1 student top-1 | "
             "teacher top-1 on anchors | energy on anchors | on G(E(x, y)) | mask open | wall (min) | stage 1 (s/iter) | "
             "stage 2 (s/epoch) | stage 3 (s/epoch) |", "| --- " * 16 + "|"]
    for side in SIDES:
        rs = [r for r in rows if r["side"] == side]
        if not rs: continue
        unit = [per_unit(r, config) for r in rs]
        seconds = lambda k: mean_sd([u[k] for u in unit]) if all(u[k] is not None for u in unit) else "-"
        anchors = lambda key, scale=100: mean_sd([scale * r["anchors"][key] if r.get("anchors") else None for r in rs])
        lines.append(f"| {side} | {','.join(str(r['seed']) for r in rs)} | "
                     f"{mean_sd([100 * r['teacher_top1']['test']['acc'] if r.get('teacher_top1') else None for r in rs])} | "
                     f"{pct(rs, 'teacher', 'acc')} | {pct(rs, 'student', 'acc')} | "
                     f"{pct(rs, 'student', 'acc3')} | {pct(rs, 'student', 'acc5')} | {pct(rs, 'stage1_student', 'acc')} | "
                     f"{anchors('anchor_top1')} | {anchors('anchor_energy', 1)} | {anchors('rec_top1')} | {anchors('mask_open')} | "
                     f"{mean_sd([r['wall'] / 60 for r in rs])} | {seconds('generator')} | {seconds('anchor')} | {seconds('mixup')} |")
    for side in SIDES:
        if seeds := [str(r["seed"]) for r in rows if r["side"] == side and r.get("stages_1_2")]:
            lines += ["", f"{side} at seed(s) {','.join(seeds)}: stage 3 alone, from the reference's stage-1 and stage-2 checkpoints "
                          "(`--counterfactual-stage3`); its stage-1 and stage-2 figures are the reference's, its wall time stage 3's, "
                          "which runs without the anomaly detection and teacher hooks that the reference's stage 1 leaves on."]
    top1 = lambda side: {r["seed"]: 100 * r["student"]["acc"] for r in rows if r["side"] == side and r.get("student")}
    diffs = [(side, paired_difference(top1(side), top1("reference"))) for side in SIDES[1:] if top1(side) and top1("reference")]
    if diffs:
        lines += ["", "| side - reference | seeds | student top-1, points [95% interval] |", "| --- | --- | --- |"]
        for side, d in diffs:
            span = "" if d["n"] < 2 else f" [{d['low']:+.1f}, {d['high']:+.1f}]"
            lines.append(f"| {side} | {d['n']} | {d['diff']:+.1f}{span} |")
    return "\n".join(lines)


def fill_anchor_figures(out, paths: dict, code: dict, latent_size: int) -> list:
    """Add stage 2's figures (`anchors`) to every finished row under `out` that lacks them and whose checkpoints are there
    (rows restored from a record have none); the `(side, seed)` pairs filled."""
    filled = []
    for done in Path(out).glob("*/s*/row.json"):
        row = json.loads(done.read_text())
        if "anchors" in row: continue
        folder, teacher = done.parent, teacher_file(out, row["seed"])
        if row["side"] in REFERENCE_SIDES:
            figures = reference_anchor_figures(code[row["side"]], folder, teacher, paths["pool"], latent_size) if teacher.exists() else None
        else:
            figures = augkd_anchor_figures(folder / "run", paths["pool"]) if (folder / "run" / "config.json").exists() else None
        if figures is None: continue
        atomic_write_text(json.dumps({**row, "anchors": figures}), done)
        filled.append((row["side"], row["seed"]))
    return filled


def restore_rows(record: dict, out, setting: str = None, budgets: dict = None) -> list:
    """Write the rows of an earlier `--json` record into `out`'s side folders as finished steps where a folder has none,
    so that a run on a new machine goes on from committed results; the restored `(side, seed)` pairs. Each row names
    the teacher file it was measured with (`teacher_sha256`; None in records older than that): both sides of a seed
    share one, and a teacher trained again on another machine may differ, so seeds compare side by side."""
    for name, mine, theirs in (("setting", setting, record.get("setting")), ("budgets", budgets, record.get("budgets"))):
        if mine is not None and theirs is not None and mine != theirs:
            raise SystemExit(f"the rows to go on from were measured with another {name} ({theirs}, not {mine}): give a new --json FILE")
    restored = []
    for row in record.get("rows", []):
        done = Path(out) / row["side"] / f"s{row['seed']}" / "row.json"
        if not done.exists():
            done.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(json.dumps({"teacher_sha256": None, "machine": record.get("machine"), **row}), done)
            restored.append((row["side"], row["seed"]))
    return restored


def _run(argv: list, log: Path, cwd=None, threads: int = None) -> float:
    """Run `argv` with its output in `log` (with `threads` compute threads, when given); its wall seconds. Raises
    SystemExit with the log's end on failure."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {})}
    start = time.time()
    with open(log, "w") as f: done = subprocess.run(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, argv[:3]))} ... failed ({done.returncode}); the end of {log}:\n"
                         + log.read_text()[-3000:].replace("\r", "\n"))
    return time.time() - start


def finished_rows(out) -> list:
    "Every finished cell's row under `out` (`SIDE/sSEED/row.json`), by seed then side."
    rows = [json.loads(f.read_text()) for f in Path(out).glob("*/s*/row.json")]
    return sorted(rows, key=lambda r: (r["seed"], SIDES.index(r["side"]) if r["side"] in SIDES else len(SIDES)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, metavar="DIR", help="a checkout of the reference AuG-KD code (never downloaded)")
    p.add_argument("--setting", default="HP-M", help="a DigitShift setting (default HP-M)")
    p.add_argument("--student-domain", help="your student-domain pool folder instead of a DigitShift setting (with --student-test and --teacher-domains)")
    p.add_argument("--student-test", help="your student-domain test folder")
    p.add_argument("--teacher-domains", nargs="+", help="your teacher-domain folders")
    p.add_argument("--shots", type=int, default=50, help="training images per class (default 50)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per side, 0 to N-1 (default 3)")
    p.add_argument("--sides", default=",".join(SIDES[:3]), help=f"which of {', '.join(SIDES)}, comma-separated (default {','.join(SIDES[:3])}); "
                   "augkd_ce reuses augkd_ref's stages 1 and 2")
    p.add_argument("--jobs", type=int, default=1, help="cells run at a time, each with its share of the cores (default 1)")
    p.add_argument("--threads", type=int, help="compute threads of each cell (default: the cores shared among --jobs)")
    p.add_argument("--gen-epochs", type=int, default=1, help=f"stage-1 epochs of {STAGE1_ITERS} iterations (default 1)")
    p.add_argument("--anchor-epochs", type=int, default=20, help="stage-2 epochs (default 20)")
    p.add_argument("--mixup-epochs", type=int, default=30, help="stage-3 epochs (default 30)")
    p.add_argument("--teacher-recipe", default="augkd", choices=list(TEACHER_RECIPES),
                   help="how each seed's teacher is trained: augkd's recipe from --teacher-init (default), or the reference code's")
    p.add_argument("--teacher-init", default="letters", help="the augkd recipe's start: letters (default), scratch, imagenet or a weights file")
    p.add_argument("--teacher-epochs", type=int, help="epochs of the teacher's training (default: 6 by augkd's recipe, 4 by the reference's)")
    p.add_argument("--counterfactual-stage3", action="store_true",
                   help="the counterfactual runs stage 3 only, from the reference side's stage-1 and stage-2 checkpoints of its seed "
                        "(the reference's own --resume and --g_dir): both sides share stages 1 and 2 exactly, stage 3's "
                        "random stream starts afresh, and the counterfactual takes a fraction of the time (stage 3 is its shortest stage)")
    p.add_argument("--out", default="runs/reference-check", help="where everything goes (default runs/reference-check)")
    p.add_argument("--table-only", action="store_true", help="run nothing: tabulate what is finished")
    p.add_argument("--json", metavar="FILE", help="also write the rows, the table, the budgets and the patches to FILE after every finished "
                   "cell; rows already in FILE count as finished (a run on a new machine goes on from committed results)")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sides = args.sides.split(",")
    if unknown := set(sides) - set(SIDES): raise SystemExit(f"unknown side(s) {sorted(unknown)}; sides are {', '.join(SIDES)}")
    if args.jobs < 1: raise SystemExit(f"--jobs {args.jobs}: allowed 1 or more")
    teacher_epochs = args.teacher_epochs or TEACHER_RECIPES[args.teacher_recipe]
    if args.student_domain:
        if not (args.student_test and args.teacher_domains): raise SystemExit("--student-domain needs --student-test and --teacher-domains")
        paths = {"pool": Path(args.student_domain).resolve(), "test": Path(args.student_test).resolve(),
                 "teachers": [Path(t).resolve() for t in args.teacher_domains]}
    else:
        print(f"data: DigitShift {args.setting} as image folders in {out / 'data'}", flush=True)
        paths = write_folders(args.setting, args.shots, out / "data")
    code = {side: out / ("reference-code" if side == "reference" else f"reference-code-{side}") for side in REFERENCE_SIDES}
    patches = {**REFERENCE_SIDES, "counterfactual": REFERENCE_SIDES["counterfactual"] + RESUME_PATCHES * args.counterfactual_stage3}
    if not args.table_only:
        for side in ["reference"] + [s for s in sides if s in REFERENCE_SIDES and s != "reference"]:
            for file, why in apply_patches(args.reference, code[side], patches[side]):
                print(f"patched {file} ({side}): {why}", flush=True)
    config = side_config(0, paths, args.shots, args.gen_epochs, args.anchor_epochs, args.mixup_epochs)
    machine = machine_name()
    budgets = {"stage-1 iterations": config.gen_epochs * STAGE1_ITERS, "anchor epochs": config.anchor_epochs,
               "mixup epochs": config.mixup_epochs, "teacher recipe": args.teacher_recipe, "teacher epochs": teacher_epochs,
               **({"teacher init": args.teacher_init} if args.teacher_recipe == "augkd" else {}), "shots": args.shots, **ARCH}
    setting = args.setting if not args.student_domain else str(paths["pool"])
    earlier = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    if earlier:
        for side, seed in restore_rows(earlier, out, setting, budgets):
            print(f"{side}, seed {seed}: finished earlier, as {args.json} records", flush=True)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    saving = threading.Lock()

    def listed(rows):
        "The patches behind `rows`: the reference's, the counterfactual's, and its resume path's where a row used it."
        return PATCHES + [COUNTERFACTUAL] + RESUME_PATCHES * any(r.get("stages_1_2") for r in rows)

    def save():
        "Write the table and the record of every finished cell (this call's, earlier calls' and --json's)."
        with saving:
            rows = finished_rows(out)
            atomic_write_text(json.dumps(rows, indent=1), out / "rows.json")
            atomic_write_text(table(rows, config) + "\n", out / "table.md")
            if args.json:
                atomic_write_text(json.dumps({"date": datetime.date.today().isoformat(), "machine": machine, "setting": setting,
                                              "budgets": budgets, "patches": [{"file": f, "why": w} for f, _, _, _, w in listed(rows)],
                                              "rows": rows, "table": table(rows, config)}, indent=1), args.json)
            return rows

    teachers = {}
    for seed in range(args.seeds):
        todo = [s for s in sides if not (out / s / f"s{seed}" / "row.json").exists()]
        if todo and not args.table_only:
            print(f"teacher, seed {seed}: {args.teacher_recipe}'s recipe, {teacher_epochs} epochs", flush=True)
            teachers[seed] = make_teacher(args.teacher_recipe, paths, seed, out, teacher_epochs, args.teacher_init, code["reference"], config)
            print(f"teacher, seed {seed}: top-1 {100 * teachers[seed]['top1']['test']['acc']:.1f}% on the student domain's test "
                  f"folder, {100 * teachers[seed]['top1']['pool']['acc']:.1f}% on its labeled pool", flush=True)

    def cell(seed: int, side: str, after=None):
        "Run one side of one seed unless finished (after `after`, a future it needs); its row."
        folder = out / side / f"s{seed}"
        done = folder / "row.json"
        if not done.exists():
            if after is not None: after.result()
            config = side_config(seed, paths, args.shots, args.gen_epochs, args.anchor_epochs, args.mixup_epochs)
            teacher = teacher_file(out, seed)
            folder.mkdir(parents=True, exist_ok=True)
            print(f"{side}, seed {seed}: running with {threads} thread(s) (log in {folder})", flush=True)
            if side in REFERENCE_SIDES:
                shared = side == "counterfactual" and args.counterfactual_stage3
                reference = out / "reference" / f"s{seed}"
                if shared:
                    if not (reference / "row.json").exists():
                        raise SystemExit(f"--counterfactual-stage3: the reference's seed {seed} is not finished; run its side first")
                    ran = json.loads((reference / "row.json").read_text())
                    if ran.get("teacher_sha256") != teachers[seed]["sha256"]:
                        raise SystemExit(f"--counterfactual-stage3: the reference's seed {seed} ran with another teacher file "
                                         f"({ran.get('teacher_sha256')}, not {teachers[seed]['sha256']})")
                resume = reference_checkpoints(reference) if shared else []
                for old in folder.glob("*/result.log"): shutil.rmtree(old.parent)  # an interrupted job starts over
                wall = _run([sys.executable, "main.py", *reference_main_args(paths, teacher, folder, seed, config), *resume],
                            folder / "log.txt", cwd=code[side], threads=threads)
                row = parse_reference_log((folder / "log.txt").read_text())  # its result.log has no time stamps
                if shared:  # stages 1 and 2 are the reference's: their figures too
                    row |= {"teacher": ran.get("teacher"), "stage1_student": ran.get("stage1_student"), "anchors": ran.get("anchors"),
                            "stages_1_2": f"the reference's, seed {seed}"}
                else:
                    row["anchors"] = reference_anchor_figures(code[side], folder, teacher, paths["pool"], config.latent_size)
            else:
                run_dir = folder / "run"
                resume = ["--resume"] if (run_dir / "config.json").exists() else []
                resume += ["--reuse", str(r)] if side == "augkd_ce" and (r := out / "augkd_ref" / f"s{seed}" / "run").exists() else []
                wall = _run(["augkd", *augkd_args(side, config, teacher, run_dir), *resume], folder / "log.txt", threads=threads)
                row = augkd_row(run_dir)
                row["anchors"] = augkd_anchor_figures(run_dir, paths["pool"])
            record = teachers[seed]
            atomic_write_text(json.dumps({"side": side, "seed": seed, "wall": wall, "threads": threads, "jobs": args.jobs,
                                          "teacher_sha256": record["sha256"], "teacher_recipe": record["recipe"],
                                          "teacher_top1": record["top1"], "machine": machine, **row}), done)
            save()
        r = json.loads(done.read_text())
        print(f"{side}, seed {seed}: student {100 * r['student']['acc']:.1f}%, {r['wall'] / 60:.1f} min", flush=True)
        return r

    if not args.table_only:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {}
            for seed in range(args.seeds):
                for side in sorted(sides, key=SIDES.index):  # a side before the sides that wait for it
                    after = (futures.get(("augkd_ref", seed)) if side == "augkd_ce" else
                             futures.get(("reference", seed)) if side == "counterfactual" and args.counterfactual_stage3 else None)
                    futures[side, seed] = pool.submit(cell, seed, side, after)
            for future in futures.values(): future.result()
    for side, seed in fill_anchor_figures(out, paths, code, config.latent_size):
        print(f"{side}, seed {seed}: stage 2's anchors read from its checkpoints", flush=True)
    print(table(save(), config))


if __name__ == "__main__":
    main()
