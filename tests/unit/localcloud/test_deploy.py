"""``localcloud down`` removes the state directory even while a Lambda worker that is still
exiting deletes files of its own under it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localcloud import deploy


def test_a_file_deleted_by_someone_else_during_the_removal_is_not_an_error(tmp_path, monkeypatch):
    state = tmp_path / "state"
    cache = state / "lambda" / "code" / "__pycache__"
    cache.mkdir(parents=True)
    for name in ("sweeper.cpython-311.pyc", "api.cpython-311.pyc"):
        (cache / name).write_bytes(b"bytecode")
    unlink = os.unlink

    def racing_unlink(path, *, dir_fd=None):
        if path == "sweeper.cpython-311.pyc":
            unlink(path, dir_fd=dir_fd)  # the exiting worker got there first
        unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", racing_unlink)
    deploy._remove_tree(state)
    assert not state.exists()


def test_any_other_error_still_fails_the_removal(tmp_path, monkeypatch):
    state = tmp_path / "state"
    (state / "code").mkdir(parents=True)
    (state / "code" / "handler.py").write_text("")

    def refused(path, *, dir_fd=None):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "unlink", refused)
    with pytest.raises(PermissionError):
        deploy._remove_tree(state)
    assert Path(state / "code" / "handler.py").exists()
