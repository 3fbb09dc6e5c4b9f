"""The package boundaries hold: what each side imports, checked in a fresh interpreter.

* a device (any edge_agent module) never imports pymysql or cloud_sync;
* the Lambda code (any cloud_sync module) never imports edge_agent or the device's heavy
  libraries, so it fits a small zip;
* gotcha_contracts, shared by both, imports only the standard library and itself.

Each check runs ``python -c`` with PYTHONPATH at this checkout, so what an earlier test
imported cannot hide a leak, and the modules checked are this checkout's.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONTRACTS = REPO / "gotcha_contracts"

DEVICE_ONLY = ("numpy", "cv2", "onnxruntime", "pydantic", "PIL", "typer", "edge_agent")
CLOUD_ONLY = ("pymysql", "cloud_sync")


def _import_all(package: str, *, isolated: bool = False) -> dict[str, object]:
    """Import every module of ``package`` in a fresh interpreter; its file and sys.modules."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        f"names = [m.name for m in pkgutil.walk_packages(root.__path__, {package + '.'!r})]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps({'file': root.__file__, 'names': names,\n"
        "                  'modules': sorted(sys.modules)}))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, *(["-S"] if isolated else []), "-c", code]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(REPO), result["file"]  # this checkout's code
    return result


def _leaks(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in forbidden)


def test_device_code_never_imports_the_cloud_side() -> None:
    # edge_agent.cli.cloud talks to RDS, but imports cloud_sync and pymysql only inside its
    # commands: importing it (as `gotcha --help` does) must not pull them in.
    result = _import_all("edge_agent")
    assert "edge_agent.cli.cloud" in result["names"] and "edge_agent.lifecycle" in result["names"]
    assert _leaks(result["modules"], CLOUD_ONLY) == []


def test_lambda_code_never_imports_the_device_side() -> None:
    result = _import_all("cloud_sync")
    assert "cloud_sync.handlers" in result["names"]
    assert _leaks(result["modules"], DEVICE_ONLY) == []


def test_contracts_load_with_the_standard_library_alone() -> None:
    # -S: no site-packages at all, as bare as a Lambda with nothing but the zip
    result = _import_all("gotcha_contracts", isolated=True)
    foreign = [m for m in result["modules"]
               if m.split(".")[0] not in sys.stdlib_module_names
               and m.split(".")[0] not in ("gotcha_contracts", "__main__")]
    assert foreign == []


def _imported_roots(path: Path) -> set[str]:
    """Top-level names a source file imports (relative imports count as its own package)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add("gotcha_contracts" if node.level else (node.module or "").split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(CONTRACTS.rglob("*.py")), ids=lambda p: p.name)
def test_contract_sources_import_only_stdlib_and_contracts(path: Path) -> None:
    roots = _imported_roots(path)
    foreign = sorted(r for r in roots
                     if r not in sys.stdlib_module_names and r != "gotcha_contracts")
    assert foreign == [], f"{path.name} imports {foreign}"
