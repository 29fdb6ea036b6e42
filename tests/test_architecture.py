"""The package's layers, pinned: imports point one way, and networkx stays inside the planner.

    front (server/app, tools_*, http, conductor) -> execution -> planning / store / discovery -> client_pool

plus the shared base (errors, limits, logs, backoff, suggest) that anything may import. The CLI sits on top;
the demo servers import only each other and the SDK. The Temporal engine (``server/execution/temporal``, an
optional extra) is the only importer of ``temporalio``, and everything else imports it lazily.
"""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import mcp_conductor

PACKAGE = Path(mcp_conductor.__file__).parent

BASE = {"errors", "limits", "logs", "backoff", "suggest", "schemas", "shapes", "models", "clip"}
# What each layer may import of the package (besides itself and the base).
ALLOWED = {
    "client_pool": set(),
    "discovery": {"client_pool"},
    "planning": {"client_pool", "discovery"},
    "store": {"client_pool", "discovery"},
    "execution": {"client_pool", "discovery", "planning", "store"},
    "front": {"client_pool", "discovery", "planning", "store", "execution"},
    "cli": {"client_pool", "discovery", "planning", "store", "execution", "front", "demo"},
    "demo": set(),
}


def layer(module: str) -> str | None:
    """The layer of a dotted module name inside the package, or None for the package's own ``__init__``."""
    parts = module.split(".")[1:]  # drop "mcp_conductor"
    if not parts or parts[0] in ("__init__", "__main__", "__version__"):
        return None
    if parts[0] in BASE:
        return "base"
    if parts[0] == "server":
        return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "front"
    return parts[0]


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (including inside functions and ``TYPE_CHECKING``), absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mcp_conductor" or node.level:
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def module_name(path: Path) -> str:
    return ".".join(("mcp_conductor", *path.relative_to(PACKAGE).with_suffix("").parts))


def test_imports_point_one_way_through_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer(module_name(path))
        if here is None:
            continue
        for line, name in imports(path):
            if not name.startswith("mcp_conductor."):
                continue
            there = layer(name)
            if there is None or there in ("base", here) or there in ALLOWED.get(here, set()):
                continue
            if here == "base":
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} base module imports {name}")
            else:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} {here} imports {name} ({there})")
    assert wrong == []


def test_networkx_is_imported_only_by_the_planner():
    users = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(name == "networkx" or name.startswith("networkx.") for _, name in imports(path))
    ]
    assert users and all(user.startswith("server/planning/") for user in users), users


def test_the_layer_map_knows_every_sub_package():
    packages = {p.parent.name for p in (PACKAGE / "server").glob("*/__init__.py")}
    packages |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")} - {"server"}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)


def test_a_back_edge_is_caught():
    # The check itself: a planning module importing the executor must be reported.
    assert layer("mcp_conductor.server.planning.planner") == "planning"
    assert layer("mcp_conductor.server.execution.executor") == "execution"
    assert "execution" not in ALLOWED["planning"]
    assert layer("mcp_conductor.server.tools_chain") == "front"
    assert layer("mcp_conductor.suggest") == "base"


TEMPORAL = "server/execution/temporal/"


def test_temporalio_is_imported_only_inside_the_temporal_engine_package():
    users = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(name == "temporalio" or name.startswith("temporalio.") for _, name in imports(path))
    ]
    assert users and all(user.startswith(TEMPORAL) for user in users), users


def top_level_imports(path: Path) -> list[tuple[int, str]]:
    """The modules ``path`` imports when it is imported (not inside functions or ``TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_the_temporal_engine_is_imported_lazily_everywhere_else():
    # Without the temporal extra every command must work: outside the package, only function bodies import it.
    eager = [
        f"{path.relative_to(PACKAGE)}:{line} {name}"
        for path in PACKAGE.rglob("*.py")
        if not str(path.relative_to(PACKAGE)).startswith(TEMPORAL)
        for line, name in top_level_imports(path)
        if name.startswith("mcp_conductor.server.execution.temporal")
    ]
    assert eager == []


def test_the_workflow_module_does_not_reach_the_mcp_sdk():
    # Temporal's sandbox re-imports workflow code: it stays on stdlib values, the CEL adapter and the references.
    script = (
        "import sys\n"
        "import mcp_conductor.server.execution.temporal.workflow\n"
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))\n"
    )
    if importlib.util.find_spec("temporalio") is None:
        pytest.skip("the temporal extra is not installed")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_front_and_the_cli_load_without_temporalio():
    script = (
        "import sys\n"
        "import mcp_conductor.server.app, mcp_conductor.server.conductor, mcp_conductor.cli\n"
        "from mcp_conductor.cli import build_parser\n"
        "build_parser()\n"
        "print('temporalio' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
