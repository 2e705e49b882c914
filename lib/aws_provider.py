"""Fast, faithful loading of the prebuilt AWS provider bindings.

``cdktf_cdktf_provider_aws/__init__.py`` ends by importing all of its ~2,100 submodules so that
every jsii type is registered up front. That costs 15-25 s and ~1 GB per process, while a stack
uses a few dozen resource types. This module executes the package ``__init__`` only up to that
import block (the assembly load and helpers stay exactly as shipped), so each submodule loads when
it is first imported. A type the JavaScript side returns before its submodule was imported is
registered on demand by importing that submodule, so the synthesized JSON is byte-identical to the
one a plain import produces (``make bench-synth`` checks that).

Import this module before any ``cdktf_cdktf_provider_aws`` submodule; ``lib/__init__`` does.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys

PACKAGE = "cdktf_cdktf_provider_aws"
_ASSEMBLY_PREFIX = "@cdktf/provider-aws."
_EAGER_IMPORTS_MARKER = "# Loading modules to ensure their types are registered"


def _snake(namespace: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", namespace).lower()


def _register_on_demand() -> None:
    """Teach jsii to import a provider submodule the first time one of its types comes back."""
    from jsii import _reference_map

    original = _reference_map._ReferenceMap.resolve
    if getattr(original, "_lazy_provider", False):
        return

    def resolve(self, kernel, ref):  # jsii's own signature, left untyped
        try:
            return original(self, kernel, ref)
        except ValueError:
            fqn = ref.ref.split("@", 1)[0]
            if not fqn.startswith(_ASSEMBLY_PREFIX):
                raise
            namespace = fqn[len(_ASSEMBLY_PREFIX) :].split(".", 1)[0]
            importlib.import_module(f"{PACKAGE}.{_snake(namespace)}")
            return original(self, kernel, ref)

    resolve._lazy_provider = True  # type: ignore[attr-defined]
    _reference_map._ReferenceMap.resolve = resolve


def load() -> None:
    """Load the provider package without its eager submodule imports (idempotent)."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"{PACKAGE} is not installed; run `make install`")
    source = spec.loader.get_source(PACKAGE) or ""
    head, marker, _ = source.partition(_EAGER_IMPORTS_MARKER)
    if not marker:
        # The generated layout changed: fall back to the slow but always-correct import.
        importlib.import_module(PACKAGE)
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    try:
        exec(compile(head, spec.origin or PACKAGE, "exec"), module.__dict__)  # noqa: S102
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    _register_on_demand()
