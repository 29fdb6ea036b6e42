"""Demo MCP server "files": read-only access to one directory tree.

The root is ``FILES_ROOT`` if set, else the markdown files bundled in ``demo/data/``. Paths are relative to
the root; absolute paths, ``..`` leaving the root and symlinks pointing outside it are refused. Run over
stdio with ``python -m mcp_conductor.demo.files``.
"""

import os
from pathlib import Path, PurePath
from typing import Annotated

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

BUNDLED_ROOT = Path(__file__).parent / "data"
MAX_FILE_BYTES = 1_000_000
MAX_LISTED = 1000

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)

Pattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        description="Glob relative to the root: '**/*' = every file, '*.md' = top.",
    ),
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileText(_Out):
    path: str = Field(description="The file's path relative to the root, with '/' separators.")
    text: str = Field(description="The file's content.")
    bytes: int = Field(description="The file's size in bytes.")


class FileList(_Out):
    files: list[str] = Field(description="Matching file paths relative to the root, sorted.")
    truncated: bool = Field(description=f"True if more than {MAX_LISTED} files matched and the rest were left out.")


class Match(_Out):
    path: str = Field(description="File path relative to the root.")
    line: int = Field(description="Line number, starting at 1.")
    text: str = Field(description="The matching line, stripped of surrounding whitespace.")


class SearchResult(_Out):
    matches: list[Match] = Field(description="Matching lines in path order, then line order.")
    truncated: bool = Field(description="True if there were more matches than max_results.")


def _resolve_inside(root: Path, path: str) -> Path:
    if PurePath(path).is_absolute() or path.startswith("~"):
        raise ToolError(f"{path!r} is absolute; give a path relative to the root, such as 'guides/setup.md'")
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise ToolError(f"{path!r} is outside the root directory; only files under the root can be read")
    return target


def _read(root: Path, path: str) -> FileText:
    target = _resolve_inside(root, path)
    if not target.is_file():
        raise ToolError(f"no file {path!r} under the root; use list_files to see which files exist")
    try:
        size = target.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ToolError(f"{path!r} has {size} bytes; files over {MAX_FILE_BYTES} bytes are not read")
        text = target.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{path!r} is not UTF-8 text") from exc
    except OSError as exc:
        raise ToolError(f"cannot read {path!r}: {exc.strerror}") from exc
    return FileText(path=target.relative_to(root).as_posix(), text=text, bytes=size)


def _glob(root: Path, pattern: str) -> list[str]:
    if PurePath(pattern).is_absolute() or ".." in PurePath(pattern).parts:
        raise ToolError(f"pattern {pattern!r} must stay inside the root: no absolute paths and no '..'")
    try:
        candidates = list(root.glob(pattern))
    except ValueError as exc:  # e.g. '**' not a whole path component
        raise ToolError(f"invalid glob pattern {pattern!r}: {exc}") from exc
    return sorted(
        {p.relative_to(root).as_posix() for p in candidates if p.resolve().is_relative_to(root) and p.is_file()}
    )


def _search(root: Path, query: str, pattern: str, max_results: int) -> SearchResult:
    needle, matches = query.casefold(), list[Match]()
    for rel in _glob(root, pattern):
        path = root / rel
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue  # binary, unreadable or just deleted: not searched
        for number, line in enumerate(lines, start=1):
            if needle in line.casefold():
                if len(matches) == max_results:
                    return SearchResult(matches=matches, truncated=True)
                matches.append(Match(path=rel, line=number, text=line.strip()))
    return SearchResult(matches=matches, truncated=False)


def build_server(root: Path | None = None) -> MCPServer:
    """A files server over ``root`` (default: the bundled demo data).

    Raises:
        NotADirectoryError: ``root`` is not an existing directory.
    """
    base = (root or BUNDLED_ROOT).resolve()
    if not base.is_dir():
        raise NotADirectoryError(f"files root {base} is not a directory")
    server = MCPServer(
        "files",
        version="0.1.0",
        instructions="Read-only access to a folder of text files. Paths are relative to that folder.",
        log_level="WARNING",
    )

    @server.tool(annotations=_READ)
    async def read_text(
        path: Annotated[str, Field(min_length=1, description="File path relative to the root, e.g. 'guides/faq.md'.")],
    ) -> FileText:
        """Read a UTF-8 text file (at most 1 MB) under the root and return its content and size in bytes."""
        return await anyio.to_thread.run_sync(_read, base, path)

    @server.tool(annotations=_READ)
    async def list_files(pattern: Pattern = "**/*") -> FileList:
        """List the files (not directories) under the root whose relative path matches a glob pattern.

        Use it first to find out which files exist, then read_text or search_text them.
        """
        files = await anyio.to_thread.run_sync(_glob, base, pattern)
        return FileList(files=files[:MAX_LISTED], truncated=len(files) > MAX_LISTED)

    @server.tool(annotations=_READ)
    async def search_text(
        query: Annotated[str, Field(min_length=1, max_length=256, description="Text to look for, any case.")],
        pattern: Pattern = "**/*.md",
        max_results: Annotated[int, Field(ge=1, le=1000, description="Stop after this many matches.")] = 100,
    ) -> SearchResult:
        """Find the lines containing a piece of text (case-insensitive) in the files matching a glob pattern.

        Returns each match's file path, line number and line text. Non-UTF-8 files are skipped.
        """
        return await anyio.to_thread.run_sync(_search, base, query, pattern, max_results)

    return server


server = build_server(Path(os.environ["FILES_ROOT"]) if os.environ.get("FILES_ROOT") else None)

if __name__ == "__main__":
    server.run()
