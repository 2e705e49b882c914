"""The Lambda layer is built from a lock of its whole dependency tree with hashes, so nothing
but a change to the lock can change its bytes (and with them every function's version)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import build_layer  # noqa: E402

LINE = re.compile(r"^(?P<name>[a-z0-9-]+)==(?P<version>\S+)( --hash=sha256:[0-9a-f]{64})+$")


def _locked() -> dict[str, str]:
    pins = {}
    for line in build_layer.LOCK.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, f"not a pinned, hashed requirement: {line!r}"
        pins[match["name"]] = match["version"]
    return pins


def test_every_top_level_requirement_is_locked_at_its_pin():
    locked = _locked()
    for line in build_layer.REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            assert locked[name.strip().lower()] == version.strip(), line


def test_the_lock_holds_the_transitive_dependencies_too():
    # Powertools needs jmespath and typing-extensions; a lock of the top level alone let them float.
    assert {"jmespath", "typing-extensions"} <= set(_locked())


def test_the_layer_installs_the_lock_with_hashes_and_nothing_else(monkeypatch, tmp_path):
    commands: list[list[str]] = []

    def run(command, check):
        commands.append(command)
        raise subprocess.CalledProcessError(1, command)  # stop before zipping

    monkeypatch.setattr(build_layer.subprocess, "run", run)
    monkeypatch.setattr(sys, "argv", ["build_layer.py", "--output", str(tmp_path / "l.zip")])
    with pytest.raises(subprocess.CalledProcessError):
        build_layer.main()
    [command] = commands
    assert command[command.index("--requirement") + 1] == str(build_layer.LOCK)
    assert "--require-hashes" in command and "--no-deps" in command
    assert "--only-binary=:all:" in command
