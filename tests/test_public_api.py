"""The package's public Python API: what it exports, and the README's example run against the demo servers."""

import re
import subprocess
import sys
from pathlib import Path

import mcp_conductor

README = Path(__file__).parents[1] / "README.md"


def test_the_public_names_are_pinned():
    assert sorted(mcp_conductor.__all__) == [
        "Conductor",
        "ConductorConfig",
        "ConductorError",
        "ConsentDecision",
        "ConsentStep",
        "DiscoverResult",
        "ExecuteResult",
        "PlanResult",
        "RunOptions",
        "__version__",
        "load_config",
    ]
    for name in mcp_conductor.__all__:
        assert getattr(mcp_conductor, name) is not None


def test_importing_the_package_does_not_import_the_mcp_sdk():
    code = "import sys, mcp_conductor; print('mcp' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]


def test_the_readmes_python_example_runs_against_the_demo_servers(tmp_path: Path):
    match = re.search(r"## Use it from Python\n.*?```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README has no 'Use it from Python' example"
    script = tmp_path / "example.py"
    script.write_text(match.group(1), encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MCP_CONDUCTOR_STATE_DIR": str(tmp_path / "state")}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "text/word_stats" in lines[0]
    assert lines[1].startswith("True (('read',), ('stats',))")
    assert any(line.startswith("2/2:") for line in lines)
    status, words = lines[-1].split()
    assert status == "succeeded" and int(words) > 0
    assert (tmp_path / "state" / "runs.db").is_file()
