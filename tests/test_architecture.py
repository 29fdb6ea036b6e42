"""The package's layers, pinned: imports point one way, and networkx stays inside the planner.

    front (server/app, tools_*, http, conductor) -> execution -> planning / store / discovery -> client_pool

plus the shared base (errors, limits, logs, backoff, suggest) that anything may import. The CLI sits on top;
the demo servers import only each other and the SDK.
"""

import ast
from pathlib import Path

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
