"""Build the Lambda dependencies layer as a deterministic zip.

Installs `lambda/requirements.txt` for the functions' platform (python3.12 on arm64) into a
scratch directory and zips it under `python/` with sorted entries and fixed timestamps, so the
same requirements always give the same bytes: Terraform then sees no change and the asset hash
in `cdk.tf.json` stays stable. Only wheels are accepted (`--only-binary`), so nothing is
compiled for the build machine by mistake.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "lambda" / "requirements.txt"
OUTPUT = ROOT / "build" / "layers" / "dependencies.zip"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def write_zip(source: Path, output: Path, *, prefix: str = "") -> None:
    """Zip ``source`` into ``output`` reproducibly (sorted names, fixed times, no caches)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    partial = output.with_suffix(".tmp")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(prefix + path.relative_to(source).as_posix(), FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "python"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(target), "--requirement", str(args.requirements),
            "--platform", "manylinux2014_aarch64", "--implementation", "cp",
            "--python-version", "3.12", "--only-binary=:all:",
        ]  # fmt: skip
        subprocess.run(command, check=True)
        shutil.rmtree(target / "bin", ignore_errors=True)
        write_zip(Path(scratch), args.output)
    size = args.output.stat().st_size / 1024
    print(f"layer: wrote {args.output.name} ({size:.0f} KiB)")


if __name__ == "__main__":
    main()
