"""Where the runtime lives, seen from the stack: the Lambda source tree and its env-var names.

``lambda/`` cannot be imported as a package (``lambda`` is a Python keyword) and its
``payments/__init__`` may pull in runtime-only dependencies, so the one module the stack shares
with the runtime, ``payments/env.py``, is loaded by path. The names are then defined once, there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = ROOT / "lambda"
BUILD_DIR = ROOT / "build"
LAYER_ZIP = Path("layers") / "dependencies.zip"


def _load_env_names() -> ModuleType:
    path = LAMBDA_DIR / "payments" / "env.py"
    spec = importlib.util.spec_from_file_location("_payments_env_names", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{path} is missing: it defines the functions' env-var names")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENV = _load_env_names()
