"""``mcp-conductor doctor`` through the real entry point: one good server and broken ones."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

FAULTY = Path(__file__).parents[1] / "fixtures" / "faulty_server.py"
SECRET = "s3cr3t-doctor-value-9431"
BOOM = {"command": sys.executable, "args": ["-c", "import sys; print('boom', file=sys.stderr); sys.exit(1)"]}
GOOD = {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.text"], "env": {"API_TOKEN": SECRET}}


def test_doctor_names_each_failure_with_a_hint_exits_1_and_never_prints_a_secret(cli, write_json):
    config = write_json("servers.json", {"mcpServers": {
        "good": GOOD, "missing": {"command": "definitely-not-a-command-4711"}, "boom": BOOM,
    }})  # fmt: skip
    done = cli("doctor", "--config", str(config))
    assert done.returncode == 1, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.split()}
    assert rows["good"].split()[:3] == ["good", "stdio", "ready"]
    assert rows["good"].split()[-1] == "4"  # the demo text server's tools
    assert "failed" in rows["missing"] and "command not found: definitely-not-a-command-4711" in rows["missing"]
    assert "failed" in rows["boom"] and "exited before the MCP handshake: boom" in rows["boom"]
    fixes = " ".join(done.stdout.split("how to fix:")[1].split())  # the hints column may wrap
    assert "missing: install definitely-not-a-command-4711, or check that it is on PATH" in fixes
    assert f"boom: run {sys.executable}" in fixes and "by hand" in fixes
    assert "2 of 3 servers failed: boom, missing" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert "\x1b[" not in done.stdout  # no colors into a pipe


def test_doctor_json_spots_stdout_noise_and_masks_secrets_a_server_echoes(cli, write_json):
    leaky = {
        "command": sys.executable,
        "env": {"API_TOKEN": SECRET},
        "args": ["-c", "import os, sys; print('bad token', os.environ['API_TOKEN'], file=sys.stderr); sys.exit(1)"],
    }
    config = write_json("servers.json", {"mcpServers": {
        "good": GOOD, "leaky": leaky, "noisy": {"command": sys.executable, "args": [str(FAULTY), "garbage"]},
    }})  # fmt: skip
    done = cli("doctor", "--config", str(config), "--json")
    assert done.returncode == 1, done.stderr
    rows = {row["server"]: row for row in json.loads(done.stdout)}
    assert set(rows["good"]) == {"server", "transport", "state", "connect_ms", "tools", "ok", "cause", "hint"}
    assert (rows["good"]["ok"], rows["good"]["state"], rows["good"]["tools"]) == (True, "ready", 4)
    assert rows["good"]["connect_ms"] > 0
    assert rows["leaky"]["ok"] is False
    assert rows["leaky"]["cause"] == "exited before the MCP handshake: bad token ***"
    assert rows["noisy"]["ok"] is False
    assert rows["noisy"]["cause"].startswith("wrote ") and "not MCP before the handshake" in rows["noisy"]["cause"]
    assert SECRET not in done.stdout + done.stderr


def test_doctor_reports_a_config_error_in_two_lines_with_exit_2(cli, write_json):
    config = write_json("servers.json", {"mcpServers": {"x": {"command": "${NO_SUCH_VAR_4711}"}}})
    done = cli("doctor", "--config", str(config))
    assert done.returncode == 2
    assert "NO_SUCH_VAR_4711" in done.stderr
    assert "Traceback" not in done.stderr


class _Refusing(BaseHTTPRequestHandler):
    """Answers every request with the status named by the path's first segment: /401/mcp -> 401."""

    paths: ClassVar[list[str]] = []  # every path asked for, in order

    def do_POST(self) -> None:
        self.paths.append(self.path)
        self.send_response(int(self.path.strip("/").split("/")[0]))
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_http() -> Iterator[str]:
    _Refusing.paths.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_doctor_tells_http_401_from_404_and_hides_the_token(cli, write_json, refusing_http):
    config = write_json("servers.json", {"mcpServers": {
        "auth": {"url": f"{refusing_http}/401/mcp?key=q-{SECRET}", "headers": {"Authorization": f"Bearer {SECRET}"}},
        "gone": {"url": f"{refusing_http}/404/mcp"},
    }})  # fmt: skip
    done = cli("--log-level", "debug", "doctor", "--config", str(config), "--json")
    assert done.returncode == 1
    rows = {row["server"]: row for row in json.loads(done.stdout)}
    assert rows["auth"]["cause"] == "HTTP 401 Unauthorized: the server wants credentials"
    assert rows["gone"]["cause"] == "HTTP 404 Not Found: no MCP endpoint at this url"
    assert SECRET not in done.stdout + done.stderr  # debug logs included


def test_a_near_miss_of_the_conductor_key_is_a_warning_under_the_human_output(cli, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"mcpServers": {}, "condutor": {"keep_runs": 5}}', encoding="utf-8")
    done = cli("doctor", "--config", str(config))
    assert "warning: " in done.stderr
    assert 'unknown top-level key "condutor" is ignored (did you mean "conductor"?)' in done.stderr


def test_doctor_never_contacts_a_disabled_server(cli, write_json, refusing_http):
    config = write_json("servers.json", {"mcpServers": {
        "good": GOOD, "off": {"url": f"{refusing_http}/401/off", "disabled": True},
        "gone": {"url": f"{refusing_http}/404/mcp"},
    }})  # fmt: skip
    done = cli("doctor", "--config", str(config), "--json")
    rows = {row["server"]: row for row in json.loads(done.stdout)}
    assert (rows["off"]["state"], rows["off"]["ok"]) == ("disabled", True)
    assert _Refusing.paths and all(path.startswith("/404/") for path in _Refusing.paths)  # "gone" was asked
