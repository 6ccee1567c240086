"""Write README.md (and its pictures in nbs/index_files/) as the export of nbs/index.ipynb.

nbdev's own `nbdev_readme` needs Quarto, which cannot be installed here; nbconvert's markdown
exporter does the same job. Code cells' inputs are left out (the index shows their outputs: the
picture), and `tests/test_sync.py` checks that the committed README is this export.
Run it after editing `nbs/index.ipynb`: `python scripts/make_readme.py`.
"""
import re
from pathlib import Path

from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]
PICTURES = "nbs/index_files"


def readme() -> tuple:
    "The README's text and its pictures (`{path relative to the repository: bytes}`), from `nbs/index.ipynb`."
    body, resources = MarkdownExporter(exclude_input=True).from_filename(str(ROOT / "nbs" / "index.ipynb"))
    pictures = {}
    for name, data in sorted(resources.get("outputs", {}).items()):
        pictures[f"{PICTURES}/{name}"] = data
        body = body.replace(f"]({name})", f"]({PICTURES}/{name})")
    # links between notebooks are relative to nbs/; the README sits one folder up
    body = re.sub(r"\]\((?!https?://|#|nbs/)([^)\s]+)\)", r"](nbs/\1)", body)
    return body.strip() + "\n", pictures


def main() -> None:
    text, pictures = readme()
    (ROOT / "README.md").write_text(text)
    folder = ROOT / PICTURES
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*"): old.unlink()
    for path, data in pictures.items():
        (ROOT / path).write_bytes(data)
    print(f"wrote README.md and {len(pictures)} picture(s) from nbs/index.ipynb")


if __name__ == "__main__":
    main()
