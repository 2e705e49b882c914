"""Write a Terraform CLI config that installs hashicorp/aws from a local filesystem mirror.

The Terraform registry may be unreachable (air-gapped CI, this project's build machines), so
`make install` looks for a provider mirror and writes `build/terraform.rc`; the Makefile points
TF_CLI_CONFIG_FILE at it. Set TF_PROVIDER_MIRROR to choose the mirror explicitly. When no mirror
is found the config is still written without it and Terraform uses the registry as usual.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROVIDER = Path("registry.terraform.io", "hashicorp", "aws")
VERSION = "5.100.0"
OUTPUT = Path(__file__).resolve().parent.parent / "build" / "terraform.rc"


def _candidates() -> list[Path]:
    home = Path.home()
    data = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share"))
    roots = [
        home / ".terraform.d" / "plugins",
        data / "terraform" / "plugins",
        Path("/usr/local/share/terraform/plugins"),
        Path("/usr/share/terraform/plugins"),
    ]
    # Images that pre-seed providers often keep them one level under /opt.
    opt = Path("/opt")
    if opt.is_dir():
        roots += sorted(p for p in opt.iterdir() if p.is_dir())
    return roots


def find_mirror() -> Path | None:
    explicit = os.environ.get("TF_PROVIDER_MIRROR")
    if explicit:
        root = Path(explicit)
        if not (root / PROVIDER / VERSION).is_dir():
            sys.exit(f"TF_PROVIDER_MIRROR={explicit} has no {PROVIDER}/{VERSION} directory")
        return root
    return next((r for r in _candidates() if (r / PROVIDER / VERSION).is_dir()), None)


def render(mirror: Path | None) -> str:
    if mirror is None:
        return "# No local provider mirror found: Terraform installs providers from the registry.\n"
    return (
        "# Written by `make install` (scripts/terraform_mirror.py); do not edit.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        f'    include = ["{PROVIDER.as_posix()}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{PROVIDER.as_posix()}"]\n'
        "  }\n"
        "}\n"
    )


def main() -> None:
    mirror = find_mirror()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render(mirror))
    where = f"mirror {mirror}" if mirror else "no mirror found; using the registry"
    print(f"terraform: wrote build/{OUTPUT.name} ({where})")


if __name__ == "__main__":
    main()
