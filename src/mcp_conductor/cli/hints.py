"""Why a downstream server did not start, and what to do about it: pure rules for ``doctor``.

    diagnose(ServerFacts(name="files", transport="stdio", state="failed", error="command not found: npx",
                         command="npx"))
    # Diagnosis(failed=True, cause="command not found: npx", hint="install Node.js (it brings npx) ...")

The rules look only at what the pool reports (state, error, stderr tail, stdout garbage count) and, for remote
servers, the HTTP status a probe saw; they do no I/O, so every rule has a unit test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

__all__ = ["Diagnosis", "ServerFacts", "diagnose"]


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What is known about one server after the first connect attempt settled."""

    name: str
    transport: str  # stdio, streamable-http, sse, in-process
    state: str  # a ServerState value
    error: str | None = None
    stderr_tail: str = ""
    command: str | None = None  # stdio only
    connect_timeout_s: float = 30.0
    stdout_garbage: int = 0  # lines on stdout that were not MCP messages
    http_status: int | None = None  # remote only: what a plain request to the url answered


@dataclass(frozen=True, slots=True)
class Diagnosis:
    failed: bool
    cause: str | None = None
    hint: str | None = None


_NODE_COMMANDS = frozenset({"npx", "npm", "node", "pnpm", "pnpx", "yarn", "bunx", "bun"})
_UV_COMMANDS = frozenset({"uvx", "uv"})
_PYTHON = re.compile(r"^(python(\d(\.\d+)?)?|py|pip\d?)$")
_CONTAINER_COMMANDS = frozenset({"docker", "podman"})

_OLD_NODE = re.compile(
    r"unsupported engine|ebadengine|requires? node|engine \"node\" is incompatible|"
    r"node\.js v?\d+(\.\d+)* is not supported|fetch is not defined|cannot find module 'node:",
    re.IGNORECASE,
)
_SYNTAX_ERROR = re.compile(r"SyntaxError: (Unexpected token|Invalid regular expression|missing \) after)")
_MISSING_ENV = re.compile(
    r"environment variable|env(ironment)? var\b|api[_ ]?key|\bis not set\b|\bnot set\b.*token|"
    r"missing (required )?(token|credential|key)|KeyError: '[A-Z][A-Z0-9_]+'",
    re.IGNORECASE,
)
_ENV_NAME = re.compile(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b")
_HTTP_STATUS = re.compile(r"\b([45]\d\d) (Unauthorized|Forbidden|Not Found|Method Not Allowed|[A-Z][a-z]+)")
_UNREACHABLE = re.compile(
    r"ConnectError|connection refused|all connection attempts failed|name or service not known|"
    r"nodename nor servname|getaddrinfo failed|no route to host|ConnectTimeout",
    re.IGNORECASE,
)

_HTTP_HINTS = {
    401: (
        "HTTP 401 Unauthorized: the server wants credentials",
        'set or renew the token in this server\'s "headers" (e.g. "Authorization": "Bearer ${TOKEN}"); '
        "a server that only offers OAuth login needs a token obtained elsewhere",
    ),
    403: (
        "HTTP 403 Forbidden: the credentials were refused for this url",
        "check the token's scopes or permissions, and that the url is the one the token was issued for",
    ),
    404: (
        "HTTP 404 Not Found: no MCP endpoint at this url",
        'check the url\'s path: usually /mcp for streamable HTTP or /sse for SSE (then also set "type": "sse")',
    ),
    405: (
        "HTTP 405 Method Not Allowed: the url does not take MCP POST requests",
        'if it is an SSE endpoint set "type": "sse"; otherwise use the server\'s streamable HTTP path (often /mcp)',
    ),
    407: (
        "HTTP 407 Proxy Authentication Required",
        "set credentials for your proxy in HTTPS_PROXY, or NO_PROXY for this host",
    ),
}


def diagnose(facts: ServerFacts) -> Diagnosis:
    """The cause of a failure in a few words, and a fix hint for the usual ones; for a healthy server, a
    warning worth showing (stdout noise) or nothing."""
    if facts.state == "ready":
        if facts.stdout_garbage:
            return Diagnosis(False, _garbage_cause(facts.stdout_garbage), _GARBAGE_HINT)
        return Diagnosis(False)
    if facts.state in ("disabled", "stopped"):
        return Diagnosis(False, "disabled in the config" if facts.state == "disabled" else None)
    for rule in _RULES:
        found = rule(facts)
        if found is not None:
            return found
    return Diagnosis(
        True,
        facts.error or f"the server is {facts.state}",
        "run `mcp-conductor --debug doctor` to see its log, or start the server by hand",
    )


# -- the rules, most specific first ------------------------------------------------------------------------


def _command_not_found(facts: ServerFacts) -> Diagnosis | None:
    error = facts.error or ""
    if error.startswith("PermissionError"):
        command = facts.command or "the command"
        return Diagnosis(
            True,
            f"permission denied running {command}",
            f"make {command} executable (chmod +x), or start it through its interpreter",
        )
    if not error.startswith("command not found: "):
        return None
    command = error.removeprefix("command not found: ").strip() or facts.command or "?"
    return Diagnosis(True, f"command not found: {command}", command_hint(command))


def command_hint(command: str) -> str:
    """How to get ``command`` onto the PATH, specific for the launchers MCP servers are usually started with."""
    name = PurePath(command).name.lower().removesuffix(".exe").removesuffix(".cmd")
    if "/" in command or "\\" in command:
        return f'{command} does not exist: fix the path in "command" (or use a bare name found on PATH)'
    path_note = (
        "; if it works in your shell, the PATH mcp-conductor sees is shorter (GUI apps and services): "
        f'give the absolute path (`which {name}`) as "command"'
    )
    if name in _NODE_COMMANDS:
        return "install Node.js 18 or newer (it brings npm and npx) from nodejs.org or a version manager" + path_note
    if name in _UV_COMMANDS:
        return f"install uv (it brings uvx): https://docs.astral.sh/uv/getting-started/installation/{path_note}"
    if _PYTHON.match(name):
        return (
            'install Python 3, or write "${CONDUCTOR_PYTHON}" as "command" to use the interpreter that runs '
            f"mcp-conductor{path_note}"
        )
    if name in _CONTAINER_COMMANDS:
        return f"install {name} and start its daemon{path_note}"
    return f"install {name}, or check that it is on PATH{path_note}"


def _old_node(facts: ServerFacts) -> Diagnosis | None:
    text = f"{facts.error or ''}\n{facts.stderr_tail}"
    node_ish = PurePath(facts.command or "").name.lower() in _NODE_COMMANDS or "node_modules" in text
    if not (_OLD_NODE.search(text) or (node_ish and _SYNTAX_ERROR.search(text))):
        return None
    return Diagnosis(
        True,
        "Node.js is too old for this server" + _last_line_suffix(facts),
        'upgrade Node.js (check `node --version`; most MCP servers need 18 or newer), or point "command" at a '
        "newer node or npx (nvm, fnm, volta install them side by side)",
    )


def _http(facts: ServerFacts) -> Diagnosis | None:
    if facts.transport not in ("streamable-http", "sse"):
        return None
    status = facts.http_status
    if status is None or status < 400:
        found = _HTTP_STATUS.search(facts.error or "")
        status = int(found.group(1)) if found else None
    if status is not None and status >= 400:
        if status in _HTTP_HINTS:
            cause, hint = _HTTP_HINTS[status]
            return Diagnosis(True, cause, hint)
        if status >= 500:
            return Diagnosis(
                True,
                f"HTTP {status}: the server had an internal error",
                "the remote server is failing: check its status or logs, and try again later",
            )
        return Diagnosis(True, f"HTTP {status} from the server", "check the url and headers in the config")
    if _UNREACHABLE.search(facts.error or ""):
        return Diagnosis(
            True,
            "cannot reach the server",
            "check that it is running and that the url's host and port are right (and proxy settings: "
            "HTTPS_PROXY, NO_PROXY)",
        )
    return None


def _garbage(facts: ServerFacts) -> Diagnosis | None:
    if not facts.stdout_garbage:
        return None
    return Diagnosis(True, _garbage_cause(facts.stdout_garbage) + " before the handshake", _GARBAGE_HINT)


_GARBAGE_HINT = (
    "a stdio server must write only MCP messages to stdout: make it log to stderr (look for a --quiet, --stdio "
    "or log option), or start it through a wrapper that sends its banner to stderr"
)


def _garbage_cause(lines: int) -> str:
    return f"wrote {lines} line{'s' if lines != 1 else ''} to stdout that {'are' if lines != 1 else 'is'} not MCP"


def _timeout(facts: ServerFacts) -> Diagnosis | None:
    if not ((facts.error or "").startswith("TimeoutError") or facts.state == "connecting"):
        return None
    n = f"{facts.connect_timeout_s:g}"
    hint = (
        f"server did not complete the MCP handshake within {n}s; it may print to stdout, wait for input, or need a "
        f'longer connect_timeout_s ("conductor": {{"servers": {{"{facts.name}": {{"connect_timeout_s": 120}}}}}})'
    )
    if PurePath(facts.command or "").name.lower() in _NODE_COMMANDS | _UV_COMMANDS:
        hint += "; a first npx/uvx run downloads the package, so run the command once by hand"
    return Diagnosis(True, f"no MCP handshake within {n}s", hint)


def _missing_env(facts: ServerFacts) -> Diagnosis | None:
    text = f"{facts.stderr_tail}\n{facts.error or ''}"
    if not _MISSING_ENV.search(text):
        return None
    names = _ENV_NAME.findall(text)
    name = names[-1] if names else "NAME"
    return Diagnosis(
        True,
        "a required environment variable is missing" + _last_line_suffix(facts),
        f'add it to this server\'s "env" in the config, e.g. "env": {{"{name}": "${{{name}}}"}}; servers do not '
        'inherit your whole environment, only the variables in "env" (values expand from yours)',
    )


def _exited(facts: ServerFacts) -> Diagnosis | None:
    error = facts.error or ""
    if facts.state == "reconnecting":
        return Diagnosis(
            True,
            f"the connection was lost after it was ready: {error}",
            "the server stopped or crashed after starting; mcp-conductor keeps restarting it",
        )
    if "Connection closed" not in error and "EndOfStream" not in error:
        return None
    if facts.transport != "stdio":
        return Diagnosis(True, f"the server closed the connection: {error}", "check the url and the server's logs")
    last = _last_stderr_line(facts)
    cause = "exited before the MCP handshake" + (f": {last}" if last else " without a word on stderr")
    command = facts.command or "its command"
    return Diagnosis(True, cause, f"run {command} by hand with the same args and env to see the whole error")


_RULES = (_command_not_found, _http, _old_node, _garbage, _timeout, _missing_env, _exited)


def _last_stderr_line(facts: ServerFacts) -> str:
    lines = [line for line in facts.stderr_tail.splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else ""


def _last_line_suffix(facts: ServerFacts) -> str:
    last = _last_stderr_line(facts)
    return f" ({last})" if last else ""
