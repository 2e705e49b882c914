"""Deterministic zip of the Lambda source tree.

The same sources must always give the same bytes: the asset hash in ``cdk.tf.json`` and the
functions' ``source_code_hash`` then change only when code changes, so Terraform plans stay empty
and ``make bench-synth`` can compare synth outputs byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

# Zip timestamps start in 1980; any fixed value works, this one is the format's epoch.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _included(path: Path, source: Path) -> bool:
    parts = path.relative_to(source).parts
    return (
        path.is_file()
        and "__pycache__" not in parts
        and path.suffix != ".pyc"
        and not any(part.startswith(".") for part in parts)
    )


def write_deterministic_zip(source: Path, output: Path) -> Path:
    """Zip every file under ``source`` (sorted, fixed times and modes, no caches) into ``output``.

    The file is replaced only when its bytes change, so its mtime stays put between synths.
    """
    files = sorted(
        (p for p in source.rglob("*") if _included(p, source)), key=lambda p: p.as_posix()
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    if output.exists() and output.read_bytes() == partial.read_bytes():
        partial.unlink()
    else:
        partial.replace(output)
    return output


def source_code_hash(path: Path) -> str:
    """``filebase64sha256`` of ``path``, as Lambda reports it, computed at synth time."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode("ascii")
