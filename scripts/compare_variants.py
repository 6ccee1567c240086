"""AuG-KD variants (config switches) against a base variant, on the headline grid's columns, seed by seed:
each variant reuses the stages it shares with the others (stage 1 always), and every run records its best
validation top-1 (what a choice between variants may read), its test top-1 and its stage diagnostics.

    python scripts/compare_variants.py [--family switches|stage3] [--seeds 0,1,2] [--out DIR] [--preset default]

`switches`: the stage switches against the method as stated (`ref`); `stage3`: stage-3 variants against
augkd's defaults (`augkd`), stages 1 and 2 shared. Writes DIR/variants.json (one row per run, rewritten
after each) and prints one line per run, then the mean validation and test top-1 of each variant with the
paired difference to the base (95% t interval over the columns and seeds).
"""
import argparse, dataclasses, json, tempfile
from pathlib import Path

from augkd.bench import HEADLINE, paired_difference
from augkd.pipeline import run
from augkd.stages import AUGKD_DEFAULTS, AUGKD_REFERENCE, make_config

VARIANTS = {"ref": AUGKD_REFERENCE,  # the method page's stages, as the paper's code runs them
            "handover": dict(AUGKD_REFERENCE, handover=True),
            "inversion_anchors": dict(AUGKD_DEFAULTS, handover=False),
            "inversion_anchors_handover": AUGKD_DEFAULTS}  # augkd's defaults

STAGE3_VARIANTS = {"augkd": AUGKD_DEFAULTS,
                   "anchor_target": dict(AUGKD_DEFAULTS, handover_target="anchor"),
                   "trusted": dict(AUGKD_DEFAULTS, handover_trusted=True),
                   "anchor_target_trusted": dict(AUGKD_DEFAULTS, handover_target="anchor", handover_trusted=True),
                   "slow_handover": dict(AUGKD_DEFAULTS, a=1.0),
                   "tau_4": dict(AUGKD_DEFAULTS, tau=4.0),
                   "labels_only": dict(AUGKD_DEFAULTS, handover_target="none")}

FAMILIES = {"switches": (VARIANTS, "ref"), "stage3": (STAGE3_VARIANTS, "augkd")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=FAMILIES, default="switches")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp())
    variants, base = FAMILIES[args.family]
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for setting, shots in HEADLINE.items():
            config = make_config(args.preset, setting=setting, shots=shots, seed=seed)
            group = out / f"{setting}-{shots}shot-s{seed}"
            for name, change in variants.items():
                results = run(dataclasses.replace(config, **change), group / name, resume=(group / name).exists(),
                              reuse=[group / other for other in variants if other != name], progress=False)
                diagnostics = results["diagnostics"].get("anchor", results["diagnostics"]["generator"])
                rows.append({"setting": setting, "shots": shots, "seed": seed, "variant": name,
                             "val": results["stages"]["mixup"]["best_val"], "test": results["student"]["acc"],
                             "seconds": results["seconds"], "diagnostics": diagnostics})
                print(f"{setting} {shots}-shot seed {seed} {name}: val {rows[-1]['val']:.3f} test {rows[-1]['test']:.3f} "
                      f"teacher on x {diagnostics['acc_x']:.2f}, on G(E(x,y)) {diagnostics['acc_rec']:.2f}, "
                      f"on anchors {diagnostics.get('acc_anchor', float('nan')):.2f} ({results['seconds']:.0f}s)", flush=True)
                (out / "variants.json").write_text(json.dumps(rows, indent=1))
    by = lambda name, key: {(r["setting"], r["seed"]): r[key] for r in rows if r["variant"] == name}
    for name in variants:
        for key in ("val", "test"):
            d = paired_difference(by(name, key), by(base, key))
            mean = sum(by(name, key).values()) / max(1, len(by(name, key)))
            print(f"{name:28s} {key:4s} mean {100 * mean:.1f}  vs {base} {100 * d['diff']:+.1f} "
                  f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] over {d['n']} runs")


if __name__ == "__main__":
    main()
