"""Build the Lambda dependencies layer as a deterministic zip.

Installs `lambda/requirements.lock` (the whole dependency tree of `lambda/requirements.txt`,
every package pinned with its wheels' SHA-256 hashes; `--require-hashes --no-deps`) for the
functions' platform (python3.12 on arm64) into a scratch directory and zips it under `python/`
with sorted entries and fixed timestamps, so the same lock always gives the same bytes:
Terraform then sees no change, and no release of a transitive dependency can change the layer
(and with it every function, the API version and the alias) without a change here. Only wheels
are accepted (`--only-binary`), so nothing is compiled for the build machine by mistake.

`--lock` writes the lock again from `requirements.txt` (after changing a pin there): it
resolves the tree for the functions' platform and records each wheel's hash.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "lambda" / "requirements.txt"
LOCK = ROOT / "lambda" / "requirements.lock"
# The functions' platform: python3.12 on arm64 (lib/functions.py).
PLATFORM = [
    "--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.12",
    "--only-binary=:all:",
]  # fmt: skip
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


def write_lock(requirements: Path, lock: Path) -> None:
    """Resolve ``requirements`` for the functions' platform and pin every wheel with its hash."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--requirement", str(requirements), "--dest", scratch, *PLATFORM,
            ],
            check=True,
        )  # fmt: skip
        lines = [
            "# The whole dependency tree of requirements.txt for the functions' platform, with",
            "# hashes: `python scripts/build_layer.py --lock` writes it; `make layer` installs it",
            "# with --require-hashes. Do not edit by hand.",
        ]
        for wheel in sorted(Path(scratch).glob("*.whl"), key=lambda p: p.name.lower()):
            name, version = wheel.name.split("-")[:2]
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{name.replace('_', '-').lower()}=={version} --hash=sha256:{digest}")
    lock.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--lock-file", type=Path, default=LOCK)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--lock", action="store_true", help="write the lock file again")
    args = parser.parse_args()
    if args.lock:
        write_lock(args.requirements, args.lock_file)
        print(f"layer: wrote {args.lock_file.name}")
        return
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "python"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(target), "--requirement", str(args.lock_file),
            "--require-hashes", "--no-deps", *PLATFORM,
        ]  # fmt: skip
        subprocess.run(command, check=True)
        shutil.rmtree(target / "bin", ignore_errors=True)
        write_zip(Path(scratch), args.output)
    size = args.output.stat().st_size / 1024
    print(f"layer: wrote {args.output.name} ({size:.0f} KiB)")


if __name__ == "__main__":
    main()
