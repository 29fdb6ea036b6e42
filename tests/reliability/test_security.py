"""Security of the HTTP front and of secrets (issue 8), beyond what ``tests/e2e/test_serve_http.py`` covers.

The HTTP server only ever runs on loopback: a non-loopback bind is only tested as a refusal. The secrets test
builds a config full of distinctive secret values (stdio env values, header values, a url's password and query,
a header expanded from the environment), runs every command that could print or store them against servers that
fail in the ways that tend to echo them, and greps every output for every secret.
"""

import json
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import httpx2
import psutil
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from fixtures.cli import run_main
from fixtures.env import host_env
from fixtures.net import free_port, wait_for_port
from mcp_conductor.cli import build_parser
from mcp_conductor.demo import DEMO_CONFIG_PATH
from mcp_conductor.errors import ConfigError
from mcp_conductor.server.http import MAX_REQUEST_BYTES, HttpOptions, check_bind, listening_line

pytestmark = pytest.mark.e2e

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[IO[str]]:
    """The meta server's stderr: ``serve.log`` in the test's directory."""
    with open(tmp_path / "serve.log", "a", encoding="utf-8") as log:
        yield log


@asynccontextmanager
async def http_server(
    tmp_path: Path, errlog: IO[str], *args: str, env: dict[str, str]
) -> AsyncIterator[tuple[int, psutil.Process]]:
    """``serve --http`` over the demo servers on a free port (always loopback: no ``--host`` may be passed)."""
    assert "--host" not in args
    port = free_port()
    command = [
        sys.executable, "-m", "mcp_conductor", "serve", "--http", "--port", str(port),
        "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(tmp_path / "state"), *args,
    ]  # fmt: skip
    process = await anyio.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog, env=env
    )
    async with process:
        try:
            with anyio.fail_after(30):
                await wait_for_port(port, process)
            yield port, psutil.Process(process.pid)
        finally:
            process.terminate()
            with anyio.fail_after(20):
                await process.wait()
    assert process.returncode in (0, -signal.SIGTERM)


# -- the bind ---------------------------------------------------------------------------------------------------


async def test_serve_binds_loopback_by_default_and_listens_nowhere_else(tmp_path: Path, errlog: IO[str]) -> None:
    args = build_parser().parse_args(["serve", "--http"])
    assert (args.host, HttpOptions().host) == ("127.0.0.1", "127.0.0.1")
    async with http_server(tmp_path, errlog, env=host_env(tmp_path / "home")) as (port, server):
        listening = [c for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert [(c.laddr.ip, c.laddr.port) for c in listening] == [("127.0.0.1", port)]


def test_serve_says_where_it_listens_and_whether_a_token_is_required() -> None:
    assert listening_line(HttpOptions(), 8765) == (
        "mcp-conductor: serving streamable HTTP at http://127.0.0.1:8765/mcp; no token required (loopback only)"
    )
    assert listening_line(HttpOptions(host="::", auth_token="t"), 9000) == (
        "mcp-conductor: serving streamable HTTP at http://[::]:9000/mcp; a bearer token is required"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_a_loopback_bind_needs_no_token(host: str) -> None:
    check_bind(HttpOptions(host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "192.0.2.7", "10.0.0.1", "example.com", "localhost.evil"])
@pytest.mark.parametrize("token", [None, ""])
def test_a_non_loopback_bind_without_a_token_is_refused(host: str, token: str | None) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"refusing to serve on {host} without a bearer token")):
        check_bind(HttpOptions(host=host, auth_token=token))


def test_serve_on_all_ipv6_addresses_without_a_token_exits_2_before_binding(tmp_path: Path) -> None:
    # Only the refusal runs (in this process: it comes before any bind): nothing here may listen beyond loopback.
    refused = run_main(
        tmp_path / "home",
        *("serve", "--http", "--host", "::", "--port", str(free_port())),
        *("--config", str(DEMO_CONFIG_PATH), "--state-dir", str(tmp_path / "state")),
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: refusing to serve on :: without a bearer token",
        "hint: pass --auth-token or set MCP_CONDUCTOR_AUTH_TOKEN, or bind 127.0.0.1",
    ]


# -- token, Origin, size ----------------------------------------------------------------------------------------


async def test_every_wrong_token_path_and_method_gets_the_same_bare_401(tmp_path: Path, errlog: IO[str]) -> None:
    token = "tok-" + secrets.token_urlsafe(24)
    first, last = ("A" if token[0] != "A" else "B") + token[1:], token[:-1] + ("A" if token[-1] != "A" else "B")
    async with http_server(tmp_path, errlog, env=host_env(tmp_path / "home", MCP_CONDUCTOR_AUTH_TOKEN=token)) as (
        port,
        _,
    ):
        url = f"http://127.0.0.1:{port}"
        with anyio.fail_after(30):
            async with httpx2.AsyncClient(headers=MCP_HEADERS, timeout=10) as http:
                refused = [
                    await http.post(f"{url}/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {wrong}"})
                    for wrong in (first, last, token + "x", token[1:], token.upper())
                ]
                refused += [
                    await http.post(f"{url}/mcp?token={token}", json=INITIALIZE),
                    await http.get(f"{url}/mcp"),
                    await http.delete(f"{url}/mcp"),
                    await http.get(f"{url}/"),
                    await http.get(f"{url}/docs"),
                ]
                ok = await http.post(f"{url}/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {token}"})
                # The scheme is case-insensitive (RFC 7235); the token is not.
                lower = await http.post(f"{url}/mcp", json=INITIALIZE, headers={"Authorization": f"bearer {token}"})
                refused.append(
                    await http.post(f"{url}/mcp", json=INITIALIZE, headers={"Authorization": f"Basic {token}"})
                )
    for response in refused:
        assert (response.status_code, response.content) == (401, b""), response.request
        assert set(response.headers) <= {"www-authenticate", "content-length", "date", "server"}
        assert response.headers["www-authenticate"] == "Bearer"
    assert ok.status_code == 200
    assert lower.status_code == 200


async def test_only_the_bound_and_the_allowed_origins_get_in(tmp_path: Path, errlog: IO[str]) -> None:
    async with http_server(
        tmp_path, errlog, "--allowed-origin", "https://app.example", env=host_env(tmp_path / "home")
    ) as (port, _):
        with anyio.fail_after(30):
            async with httpx2.AsyncClient(headers=MCP_HEADERS, timeout=10) as http:

                async def status(origin: str) -> int:
                    response = await http.post(
                        f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers={"Origin": origin}
                    )
                    return response.status_code

                statuses = {
                    origin: await status(origin)
                    for origin in (
                        "https://app.example",
                        f"http://127.0.0.1:{port}",
                        f"http://localhost:{port}",
                        "http://evil.example",
                        "https://app.example.evil",
                        "http://app.example",
                        f"http://127.0.0.1:{port + 1}",
                        "null",
                    )
                }
    assert statuses == {
        "https://app.example": 200,
        f"http://127.0.0.1:{port}": 200,
        f"http://localhost:{port}": 200,
        "http://evil.example": 403,
        "https://app.example.evil": 403,
        "http://app.example": 403,
        f"http://127.0.0.1:{port + 1}": 403,
        "null": 403,
    }


def padded_initialize(size: int) -> bytes:
    """An initialize request of exactly ``size`` bytes (padded inside clientInfo, which the SDK ignores)."""
    body = json.dumps({**INITIALIZE, "params": {**INITIALIZE["params"], "pad": ""}}).encode()  # type: ignore[dict-item]
    pad = size - len(body)
    return json.dumps({**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "x" * pad}}).encode()  # type: ignore[dict-item]


async def test_a_body_over_4_mib_gets_413_and_an_unauthenticated_one_is_refused_before_it_is_read(
    tmp_path: Path, errlog: IO[str]
) -> None:
    token = "tok-" + secrets.token_urlsafe(24)
    bearer = {"Authorization": f"Bearer {token}"}

    async def chunks(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 2**20):
            yield b"x" * 2**20

    async with http_server(tmp_path, errlog, "--auth-token", token, env=host_env(tmp_path / "home")) as (port, _):
        url = f"http://127.0.0.1:{port}/mcp"
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers=MCP_HEADERS, timeout=30) as http:
                at_limit = await http.post(url, content=padded_initialize(MAX_REQUEST_BYTES), headers=bearer)
                over = await http.post(url, content=padded_initialize(MAX_REQUEST_BYTES + 1), headers=bearer)
                chunked = await http.post(url, content=chunks(8 * 2**20), headers=bearer)  # no content-length
                anonymous = await http.post(url, content=b"x" * (8 * 2**20))
                after = await http.post(url, json=INITIALIZE, headers=bearer)
    assert MAX_REQUEST_BYTES == 4 * 2**20
    assert at_limit.status_code == 200
    assert (over.status_code, over.text) == (413, "Request body too large")
    assert (chunked.status_code, chunked.text) == (413, "Request body too large")
    assert (anonymous.status_code, anonymous.content) == (401, b"")
    assert after.status_code == 200  # and the server is none the worse


# -- secrets ----------------------------------------------------------------------------------------------------

LEAKY_SERVER = '''
import os, sys
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

key = os.environ["LEAKY_KEY"]
print(f"leaky starting with key {key}", file=sys.stderr, flush=True)
server = MCPServer("leaky")

@server.tool()
async def check_api_key() -> str:
    """Check the API key against the service (it echoes the key when it fails, as real ones do)."""
    raise ToolError(f"invalid api key {key} (401 from https://api.example/v1?key={key})")

server.run()
'''
# It echoes its key on stdout (garbage to MCP) and stderr, then exits.
CRASHY_SERVER = (
    "import os, sys; k = os.environ['CRASHY_KEY']; print('bad key', k); print('fatal: key', k, file=sys.stderr)"
)


def secret_config(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A config whose every secret is distinctive; returns it, the secrets by name, and the environment to run
    with (one header secret only arrives through ``${REMOTE_API_KEY}`` expansion)."""
    names = ("leaky", "crashy", "password", "query", "bearer", "apikey")
    found = {name: f"{name}-{secrets.token_hex(12)}" for name in names}
    leaky = tmp_path / "leaky.py"
    leaky.write_text(LEAKY_SERVER, encoding="utf-8")
    closed = free_port()  # nothing listens there: every connection attempt fails at once
    servers = {
        "leaky": {"command": sys.executable, "args": [str(leaky)], "env": {"LEAKY_KEY": found["leaky"]}},
        "crashy": {"command": sys.executable, "args": ["-c", CRASHY_SERVER], "env": {"CRASHY_KEY": found["crashy"]}},
        "remote": {
            "type": "http",
            "url": f"http://user:{found['password']}@127.0.0.1:{closed}/mcp?token={found['query']}",
            "headers": {"Authorization": f"Bearer {found['bearer']}", "X-Api-Key": "${REMOTE_API_KEY}"},
        },
    }
    config = tmp_path / "servers.json"
    conductor = {"defaults": {"connect_timeout_s": 5}}
    config.write_text(json.dumps({"mcpServers": servers, "conductor": conductor}), encoding="utf-8")
    return config, found, host_env(tmp_path / "home", REMOTE_API_KEY=found["apikey"])


async def serve_session(config: Path, state_dir: Path, env: dict[str, str], errlog: IO[str]) -> list[Any]:
    """A host's session with ``serve --log-level debug``: every meta tool, a failing step, an invalid plan."""
    argv = ["-m", "mcp_conductor", "--log-level", "debug", "serve", "--config", str(config), "--state-dir", str(state_dir)]  # fmt: skip  # noqa: E501
    params = StdioServerParameters(command=sys.executable, args=argv, env=env)
    answers: list[Any] = []
    async with Client(stdio_client(params, errlog=errlog)) as client:
        answers.append(await client.list_tools())
        answers.append(await client.call_tool("discover_tools", {"query": "check the api key"}))
        failing = {"steps": [{"id": "check", "tool": "leaky/check_api_key"}]}
        answers.append(await client.call_tool("plan_chain", {"plan": failing}))
        answers.append(await client.call_tool("execute_chain", {"plan": failing, "options": {"run_id": "served"}}))
        remote = {"steps": [{"id": "r", "tool": "remote/anything"}, {"id": "c", "tool": "crashy/anything"}]}
        answers.append(await client.call_tool("execute_chain", {"plan": remote}))
    return answers


async def test_no_secret_from_the_config_shows_up_in_any_output_log_error_export_or_the_store(
    tmp_path: Path, errlog: IO[str]
) -> None:
    config, found, env = secret_config(tmp_path)
    state = tmp_path / "state"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"id": "check", "tool": "leaky/check_api_key"}]}), encoding="utf-8")
    outputs: dict[str, bytes] = {}

    async def cli(name: str, *args: str) -> None:  # in this process: what the commands print is the point
        argv = ["--log-level", "debug", *args]
        with anyio.fail_after(60):
            done = await anyio.to_thread.run_sync(partial(run_main, tmp_path / "home", *argv, env=env))
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = done.stdout.encode(), done.stderr.encode()

    with anyio.fail_after(60):
        answers = await serve_session(config, state, env, errlog)
    outputs["serve answers"] = json.dumps([a.model_dump(mode="json") for a in answers]).encode()
    await cli("doctor", "doctor", "--config", str(config))
    await cli("doctor --json", "doctor", "--config", str(config), "--json")
    await cli("tools", "tools", "--config", str(config))
    await cli("tools --json", "tools", "--config", str(config), "--json")
    run_log = tmp_path / "run.log"
    await cli("run", "--log-file", str(run_log), "run", str(plan), "--config", str(config), "--state-dir", str(state), "--json")  # fmt: skip  # noqa: E501
    run_id = json.loads(outputs["run stdout"])["run_id"]
    for rid in ("served", run_id):
        await cli(f"runs show {rid}", "runs", "show", rid, "--state-dir", str(state))
        await cli(f"runs export {rid}", "runs", "export", rid, "--state-dir", str(state))
        exported = tmp_path / f"{rid}.json"
        await cli(f"runs export {rid} -o", "runs", "export", rid, "--state-dir", str(state), "-o", str(exported))
        outputs[exported.name] = exported.read_bytes()
    await cli("runs list", "runs", "list", "--state-dir", str(state))
    outputs["serve.log"] = (tmp_path / "serve.log").read_bytes()
    outputs["run.log"] = run_log.read_bytes()
    for path in state.iterdir():  # runs.db and, if there, its WAL
        outputs[path.name] = path.read_bytes()

    leaks = {
        (name, where) for name, value in found.items() for where, text in outputs.items() if value.encode() in text
    }
    assert sorted(leaks) == [], "\n".join(map(str, sorted(leaks)))
    # The outputs did carry the failures that would have shown the secrets, masked.
    served = json.loads(outputs["runs export served stdout"])
    assert served["steps"][0]["error"]["message"] == (
        "Error executing tool check_api_key: invalid api key *** (401 from https://api.example/v1?key=***)"
    )
    for where in ("serve.log", "run.log", "doctor stderr", "tools stderr"):
        assert b"fatal: key ***" in outputs[where], where  # crashy's stderr, seen and masked
        assert b"leaky starting with key ***" in outputs[where], where
    assert b"Connecting to StreamableHTTP endpoint: http://user:***@127.0.0.1" in outputs["serve.log"]
    doctor = {row["server"]: row for row in json.loads(outputs["doctor --json stdout"])}
    assert {name: row["ok"] for name, row in doctor.items()} == {"crashy": False, "leaky": True, "remote": False}
