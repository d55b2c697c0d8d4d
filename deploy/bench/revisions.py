"""A module of another git revision, loaded beside this checkout's: the benches' "before" side of a same-run pair."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def module_at(revision: str, path: str, name: str) -> ModuleType:
    """The file `path` (relative to the repository) as `revision` has it, imported as the module `name`; what it
    imports comes from this checkout. Registered in sys.modules first: dataclasses look their module up there
    while the module runs."""
    source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True, capture_output=True).stdout
    file = Path(tempfile.mkdtemp(prefix="bench-before-")) / f"{name}.py"
    file.write_bytes(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
