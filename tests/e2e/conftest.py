"""End-to-end tests against the local cloud: the real stack, deployed by `cdktf deploy`.

Every test here carries the ``e2e`` marker (added below), so ``pytest -m "not e2e"`` skips the
whole directory. The ``cloud`` fixture reuses a running ``make local-up``; otherwise it runs
``python -m localcloud up`` itself and ``down`` at the end of the session. The log scan runs
after everything else but destroy (it reads what the others logged), and the destroy tests last
whatever the order of collection, since they tear the stack down.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from localcloud.client import LocalCloud
from localcloud.config import REPO_ROOT, LocalCloudConfig
from localcloud.deploy import running_server

# The modules that run last, in this order.
LAST_MODULES = ("test_log_scan", "test_destroy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = str(REPO_ROOT / "tests" / "e2e")
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.e2e)
    # Stable sort: everything else keeps its order, then the log scan, then destroy.
    last = {stem: rank for rank, stem in enumerate(LAST_MODULES, start=1)}
    items.sort(key=lambda item: last.get(item.path.stem, 0))


def _localcloud(command: str) -> int:
    return subprocess.run(
        [sys.executable, "-m", "localcloud", command], cwd=REPO_ROOT, check=False
    ).returncode


@pytest.fixture(scope="session")
def cloud(pytestconfig: pytest.Config) -> Iterator[LocalCloud]:
    # `up` takes minutes: let its progress reach the terminal instead of pytest's capture.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    uncaptured = capture.global_and_fixture_disabled if capture else contextlib.nullcontext
    # Stop at the end only what this session started; a developer's `make local-up` stays up.
    started_here = running_server(LocalCloudConfig.from_env()) is None
    with uncaptured():
        if _localcloud("status") != 0 and _localcloud("up") != 0:
            if started_here:
                _localcloud("down")
            pytest.fail("`python -m localcloud up` failed; its output is above")
    try:
        yield LocalCloud()
    finally:
        if started_here:
            with uncaptured():
                _localcloud("down")
