"""The ``cloud`` fixture: a patched moto server in this process, one per test module.

Module scope, not session: the patches are undone when the module's tests are done (see
localcloud_support), so tests of other packages running later in the same worker see moto as it
ships. Modules that use it carry an ``xdist_group`` marker so that one worker runs all their tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from localcloud_support import Cloud, patched_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with patched_cloud(tmp_path_factory.mktemp("lambda")) as patched:
        yield patched
