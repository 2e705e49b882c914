"""Import a submodule without running its package's ``__init__``, when that is all it costs.

Some packages import everything they have in ``__init__`` for convenience. A cold start pays for
every module imported, so where a function uses one submodule the package is registered from its
spec without executing ``__init__``, and the submodule is imported as usual. If the package was
already imported in full (tests, another handler), nothing changes.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_package_init(name: str) -> Iterator[None]:
    if name in sys.modules:
        yield
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"{name} is not an installed package")
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    try:
        yield
    except BaseException:
        sys.modules.pop(name, None)
        raise
