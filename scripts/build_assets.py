"""Build static/dist/ for `make assets` (see market/assets.py for how the pages use it).

- every file under static/ (our css, js, img and the npm files in static/vendor) is copied to
  static/dist/<folder>/<stem>.<hash>.<ext>, the hash being the first 12 hex digits of the
  SHA-256 of its content; source-map comments are dropped (the maps are not shipped);
- Bootstrap's CSS is first trimmed by PurgeCSS (npm) to the selectors the templates, our
  scripts and the Python code can use, with a safelist for what Bootstrap's JavaScript toggles
  (scripts/purgecss.config.cjs): 232 KB -> ~98 KB, ~23 KB -> ~13 KB in brotli;
- dist/icons.<hash>.svg: a sprite with one <symbol id="i-NAME"> per icon that the templates
  name (`icon('NAME')`), taken from node_modules/bootstrap-icons/icons/NAME.svg;
- text files get .gz and .br variants beside them (whitenoise.compress), which WhiteNoise serves
  per Accept-Encoding;
- dist/manifest.json maps each source path to its fingerprinted path, and lists the icons.

The manifest is replaced atomically, so a running shop never reads half of one. Files of earlier
builds stay (a shop started before the build still names them) unless --prune is given.

    .venv/bin/python scripts/build_assets.py [--prune]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from whitenoise.compress import Compressor

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from market.assets import DIST, ICON_CALL, MANIFEST, SPRITE  # noqa: E402

STATIC = REPO / "static"
TEMPLATES = REPO / "templates"
PYTHON = REPO / "market"
ICONS = REPO / "node_modules" / "bootstrap-icons" / "icons"
PURGECSS = REPO / "node_modules" / ".bin" / "purgecss"
PURGECSS_CONFIG = REPO / "scripts" / "purgecss.config.cjs"
# Trimmed to what the pages use; a class that only appears in a page after a build is missing
# until the next `make assets` (which `make run` runs when a template changes).
TRIMMED = ("vendor/bootstrap/bootstrap.min.css",)
SKIP_SUFFIXES = (".map", ".gz", ".br")
SOURCE_MAP = re.compile(rb"\n?/[*/]# sourceMappingURL=[^\n]*?(\*/)?\s*$")
SVG = re.compile(r"<svg\b[^>]*\bviewBox=\"([^\"]+)\"[^>]*>(.*)</svg>", re.S)


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def hashed_name(relative: Path, data: bytes) -> str:
    stem, dot, ext = relative.name.rpartition(".")
    if not dot:
        stem, ext = relative.name, ""
    return (relative.parent / f"{stem}.{fingerprint(data)}{dot}{ext}").as_posix()


def sources() -> list[Path]:
    """Every file under static/ except dist/ itself, source maps and compressed variants."""
    found = []
    for path in sorted(STATIC.rglob("*")):
        relative = path.relative_to(STATIC)
        if not path.is_file() or relative.parts[0] == DIST or path.name.startswith("."):
            continue
        if path.suffix in SKIP_SUFFIXES:
            continue
        found.append(relative)
    return found


def icon_names() -> list[str]:
    """Icons named by `icon('...')` in the templates and in Python code."""
    names: set[str] = set()
    for folder, pattern in ((TEMPLATES, "*.html"), (PYTHON, "*.py")):
        for path in folder.rglob(pattern):
            names.update(ICON_CALL.findall(path.read_text(encoding="utf-8")))
    return sorted(names)


def sprite(names: list[str]) -> bytes:
    symbols = []
    for name in names:
        source = ICONS / f"{name}.svg"
        if not source.is_file():
            raise SystemExit(f"icon {name!r} is not a Bootstrap icon ({source} is missing)")
        match = SVG.search(source.read_text(encoding="utf-8"))
        if match is None:
            raise SystemExit(f"{source} is not an SVG with a viewBox")
        view_box, body = match.groups()
        body = re.sub(r">\s+<", "><", body.strip())
        symbols.append(f'<symbol id="i-{name}" viewBox="{view_box}">{body}</symbol>')
    return ('<svg xmlns="http://www.w3.org/2000/svg">' + "".join(symbols) + "</svg>\n").encode()


def trimmed(relative: str) -> bytes:
    """static/<relative> without the selectors no template, script or Python file names."""
    if not PURGECSS.is_file():
        raise SystemExit(f"{PURGECSS} is missing: run `make assets` (npm install)")
    with tempfile.TemporaryDirectory(prefix="purgecss-") as output:
        subprocess.run(
            [
                str(PURGECSS),
                "--config",
                str(PURGECSS_CONFIG),
                "--css",
                str(STATIC / relative),
                "--output",
                output,
            ],
            cwd=REPO,
            check=True,
        )
        return (Path(output) / Path(relative).name).read_bytes()


def write_if_new(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def build(prune: bool = False) -> dict:
    dist = STATIC / DIST
    contents: dict[str, bytes] = {}
    for relative in sources():
        if relative.as_posix() in TRIMMED:
            data = trimmed(relative.as_posix())
        else:
            data = (STATIC / relative).read_bytes()
        if relative.suffix in (".css", ".js"):
            data = SOURCE_MAP.sub(b"\n", data)
        contents[relative.as_posix()] = data
    names = icon_names()
    contents[SPRITE] = sprite(names)

    files: dict[str, str] = {}
    compressor = Compressor(quiet=True)
    for source, data in contents.items():
        target = hashed_name(Path(source), data)
        files[source] = f"{DIST}/{target}"
        path = dist / target
        written = write_if_new(path, data)
        has_variant = Path(f"{path}.gz").exists() or Path(f"{path}.br").exists()
        if compressor.should_compress(path.name) and (written or not has_variant):
            for _variant in compressor.compress(str(path)):
                pass

    manifest = {"files": files, "icons": names}
    temporary = dist / f".{MANIFEST}.{os.getpid()}"
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, dist / MANIFEST)

    if prune:
        _prune(dist, files)
    return manifest


def _prune(dist: Path, files: dict[str, str]) -> None:
    keep = {dist / MANIFEST}
    for target in files.values():
        path = STATIC / target
        keep.update({path, Path(f"{path}.gz"), Path(f"{path}.br")})
    for path in dist.rglob("*"):
        if path.is_file() and path not in keep and not path.name.startswith("."):
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove files of earlier builds (a shop still running with their manifest loses them)",
    )
    args = parser.parse_args(argv)
    manifest = build(prune=args.prune)
    total = sum((STATIC / p).stat().st_size for p in manifest["files"].values())
    print(
        f"static/{DIST}: {len(manifest['files'])} files ({total / 1024:.0f} KB uncompressed), "
        f"{len(manifest['icons'])} icons in the sprite"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
