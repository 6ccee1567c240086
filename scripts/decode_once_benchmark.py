"""Decode once vs decode every epoch, on an image folder of JPEGs (DigitShift written out at 224x224).

    python scripts/decode_once_benchmark.py [--images 3000] [--size 224] [--working-sizes 32,224] [--root DIR]

For each working resolution (32x32 is the paper's protocol and augkd's default; 224 keeps the files'
size), prints the seconds of one training-style epoch (shuffled batches of 64, float tensors out) when
every image is opened, decoded and resized each time (what a plain ImageFolder pipeline does), and when
the folder was decoded once into augkd's cache (`image_folder_domain`), plus the one-off costs: the
first decode and a later load.
"""
import argparse, tempfile, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augkd.data import digitshift, image_folder_domain, take_shots
from augkd.train import batches


def write_jpegs(root: Path, n: int, size: int) -> list:
    "DigitShift photo and printed digits, upscaled to size x size, as class folders of JPEGs; their paths."
    domains = digitshift()
    per_domain = -(-n // 20)  # images per class and domain
    paths = []
    for name in ("photo", "printed"):
        d = domains[name]
        picked = d.subset(take_shots(torch.arange(len(d)), d.labels, per_domain))
        for i, (img, label) in enumerate(zip(picked.images, picked.labels.tolist())):
            folder = root / d.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            path = folder / f"{name}-{i:05d}.jpg"
            Image.fromarray(pixels).resize((size, size), Image.BILINEAR).save(path, quality=90)
            paths.append((label, path))
    return paths


def epoch_decoding_every_time(files: list, size: int, batch_size: int = 64) -> float:
    "One epoch that opens, decodes and resizes every image to `size`."
    start = time.perf_counter()
    order = torch.randperm(len(files)).tolist()
    for i in range(0, len(order), batch_size):
        images = []
        for j in order[i:i + batch_size]:
            with Image.open(files[j][1]) as im:
                images.append(torch.from_numpy(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)).copy()))
        torch.stack(images).permute(0, 3, 1, 2).float().div_(255)
    return time.perf_counter() - start


def epoch_decoded_once(domain, batch_size: int = 64) -> float:
    "One epoch over a domain decoded once."
    start = time.perf_counter()
    for x, y in batches(domain, batch_size, shuffle=True): pass
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=224, help="the JPEGs' size (default 224)")
    parser.add_argument("--working-sizes", default="32,224", help="resolutions to train at, comma-separated (default 32,224)")
    parser.add_argument("--root", type=Path, default=None, help="where to write the JPEGs (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "jpegs"
        files = write_jpegs(root, args.images, args.size)
        print(f"{len(files)} JPEGs at {args.size}x{args.size} in {root}")
        for size in (int(s) for s in args.working_sizes.split(",")):
            start = time.perf_counter(); image_folder_domain(root, size); first = time.perf_counter() - start
            start = time.perf_counter(); domain = image_folder_domain(root, size); later = time.perf_counter() - start
            every = epoch_decoding_every_time(files, size)
            once = epoch_decoded_once(domain)
            print(f"working size {size}: first decode into the cache {first:.1f} s; a later run's load {later:.2f} s")
            print(f"working size {size}: one epoch, decoding every image: {every:.2f} s; decoded once: {once:.3f} s; "
                  f"ratio {every / once:.0f}x", flush=True)


if __name__ == "__main__":
    main()
