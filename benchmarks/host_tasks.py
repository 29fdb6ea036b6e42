"""The everyday tasks of ``bench_host.py``, the sandbox they run in, and how their effects are checked.

A task is data: the ``discover_tools`` query a model would write, the plan it would then pass to
``execute_chain`` (tool ids ``server/tool``; ``{FILES}`` and ``{REPO}`` stand for the sandbox's folder and git
repository), and a check of what must be true afterwards (files, the memory server's file, the last result the
model read). Calling the tools directly, the model makes the plan's tool steps one per turn, in order, copying
values from earlier results as ``${steps.ID.path}`` would. A task whose plan has data steps (``foreach``,
``expr``) must spell out its direct calls in ``direct``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTES = {
    "project.md": "# Project Atlas\nA small CLI that maps folders. Owner: Dana. Status: beta.\n",
    "todo.md": "- write the release notes\n- fix the parser edge case\n- ask Sam about the logo\n",
    "ideas.md": "Maybe a web view. Maybe colours per file type.\n",
}
COMMITS = (
    "Add README",
    "Add the folder parser",
    "Fix an off-by-one in the parser",
    "Document the CLI options",
    "Bump version to 0.2.0",
)
UNSTAGED_LINE = "An unstaged line about the web view."


@dataclass(frozen=True, slots=True)
class Sandbox:
    """One mode's world: a folder for the filesystem server, a git repository and the memory server's file."""

    root: Path

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def memory(self) -> Path:
        return self.root / "memory.jsonl"

    def fill(self, value: Any) -> Any:
        """``value`` with ``{FILES}`` and ``{REPO}`` replaced in every string."""
        if isinstance(value, str):
            return value.replace("{FILES}", str(self.files)).replace("{REPO}", str(self.repo))
        if isinstance(value, Mapping):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.fill(v) for v in value]
        return value

    def graph(self) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, str]]]:
        """The memory server's file as written: entities by name, relations as (from, type, to)."""
        entities: dict[str, dict[str, Any]] = {}
        relations = []
        if self.memory.is_file():
            for line in self.memory.read_text(encoding="utf-8").splitlines():
                item = json.loads(line) if line.strip() else {}
                if item.get("type") == "entity":
                    entities[item["name"]] = item
                elif item.get("type") == "relation":
                    relations.append((item["from"], item["relationType"], item["to"]))
        return entities, relations


def make_sandbox(root: Path) -> Sandbox:
    """Notes in ``files/notes``, an empty ``files/out``, and a repository with five commits and one unstaged
    change."""
    sandbox = Sandbox(root)
    (sandbox.files / "notes").mkdir(parents=True)
    (sandbox.files / "out").mkdir()
    for name, text in NOTES.items():
        (sandbox.files / "notes" / name).write_text(text, encoding="utf-8")
    repo = sandbox.repo
    repo.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Bench Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Bench Author",
        "GIT_COMMITTER_EMAIL": "author@example.com",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    for i, message in enumerate(COMMITS):
        (repo / "README.md").write_text("# atlas\n" + "".join(f"change {j}\n" for j in range(i + 1)), encoding="utf-8")
        git("add", "README.md")
        stamp = f"2026-11-0{i + 1}T10:00:00+00:00"
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = stamp
        git("-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    with (repo / "README.md").open("a", encoding="utf-8") as readme:
        readme.write(UNSTAGED_LINE + "\n")
    return sandbox


# A check returns its problems (empty: the task did its job); ``last`` is the last result the model read.
Check = Callable[[Sandbox, str], list[str]]


def file_has(relative: str, *needles: str, exact: str | None = None, lacking: tuple[str, ...] = ()) -> Check:
    def check(sandbox: Sandbox, last: str) -> list[str]:
        path = sandbox.files / relative
        if not path.is_file():
            return [f"{relative} was not written"]
        text = path.read_text(encoding="utf-8")
        if exact is not None and text != exact:
            return [f"{relative} is {text[:80]!r}, expected {exact!r}"]
        return [f"{relative} lacks {n!r}" for n in needles if n not in text] + [
            f"{relative} should not have {n!r}" for n in lacking if n in text
        ]

    return check


def memory_has(
    observations: Mapping[str, tuple[str, ...]] = {}, relations: tuple[tuple[str, str, str], ...] = ()
) -> Check:
    def check(sandbox: Sandbox, last: str) -> list[str]:
        entities, found = sandbox.graph()
        problems = [f"relation {r} not in memory" for r in relations if r not in found]
        for name, needles in observations.items():
            if name not in entities:
                problems.append(f"entity {name!r} not in memory")
                continue
            seen = "\n".join(entities[name].get("observations", []))
            problems += [f"entity {name!r} lacks an observation with {n!r}" for n in needles if n not in seen]
        return problems

    return check


def last_result_has(*needles: str) -> Check:
    def check(sandbox: Sandbox, last: str) -> list[str]:
        return [f"the last result lacks {n!r}" for n in needles if n not in last]

    return check


def all_of(*checks: Check) -> Check:
    return lambda sandbox, last: [p for c in checks for p in c(sandbox, last)]


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    query: str  # what the model asks discover_tools
    plan: dict[str, Any]  # what it then passes to execute_chain
    check: Check
    direct: tuple[dict[str, Any], ...] | None = None  # the calls made directly, when not the plan's steps

    def direct_steps(self) -> list[dict[str, Any]]:
        if self.direct is not None:
            return list(self.direct)
        steps = self.plan["steps"]
        if any("tool" not in step for step in steps):
            raise ValueError(f"task {self.name}: a plan with data steps needs its direct calls spelled out")
        return list(steps)


def step(id_: str, tool: str, depends_on: tuple[str, ...] = (), **arguments: Any) -> dict[str, Any]:
    found = {"id": id_, "tool": tool, "arguments": arguments}
    return found | ({"depends_on": list(depends_on)} if depends_on else {})


def write(id_: str, path: str, content: str, depends_on: tuple[str, ...] = ()) -> dict[str, Any]:
    return step(id_, "filesystem/write_file", depends_on, path=path, content=content)


def read(id_: str, path: str) -> dict[str, Any]:
    return step(id_, "filesystem/read_text_file", path=path)


def entity(name: str, kind: str, *observations: str) -> dict[str, Any]:
    return {"name": name, "entityType": kind, "observations": list(observations)}


# server-filesystem lists a folder as text, one "[FILE] name" or "[DIR] name" per line
MARKDOWN_FILES = (
    "lines(steps.ls.content).filter(l, l.startsWith('[FILE] ') && l.endsWith('.md')).map(l, l.substring(7))"
)

TASKS: tuple[Task, ...] = (
    Task(
        "tokyo_time_to_file",
        "get the current time in a timezone and write it to a file",
        {
            "steps": [
                step("now", "time/get_current_time", timezone="Asia/Tokyo"),
                write("save", "{FILES}/out/tokyo.txt", "Tokyo: ${steps.now.datetime}"),
            ]
        },
        file_has("out/tokyo.txt", "Tokyo: 20", "+09:00"),
    ),
    Task(
        "notes_into_memory",
        "read text files and store their content in a knowledge graph entity",
        {
            "steps": [
                read("project", "{FILES}/notes/project.md"),
                read("todo", "{FILES}/notes/todo.md"),
                step(
                    "remember",
                    "memory/create_entities",
                    entities=[entity("atlas", "project", "${steps.project.content}", "${steps.todo.content}")],
                ),
            ]
        },
        memory_has({"atlas": ("Owner: Dana", "fix the parser edge case")}),
    ),
    Task(
        "git_log_to_file",
        "show the recent git commit log and save it to a file",
        {
            "inputs": {"repo": "{REPO}"},
            "steps": [
                step("log", "git/git_log", repo_path="${inputs.repo}", max_count=3),
                write("save", "{FILES}/out/recent-commits.txt", "${steps.log}"),
            ],
        },
        file_has("out/recent-commits.txt", *COMMITS[2:], lacking=COMMITS[:2]),
    ),
    Task(
        "graph_round_trip",
        "create entities and a relation in the knowledge graph and read the graph",
        {
            "steps": [
                step(
                    "people",
                    "memory/create_entities",
                    entities=[entity("Alice", "person", "likes tea"), entity("Acme", "company", "makes anvils")],
                ),
                step(
                    "link",
                    "memory/create_relations",
                    ("people",),
                    relations=[{"from": "Alice", "to": "Acme", "relationType": "works_at"}],
                ),
                step("graph", "memory/read_graph", ("link",)),
            ]
        },
        all_of(
            memory_has({"Alice": ("likes tea",), "Acme": ()}, relations=(("Alice", "works_at", "Acme"),)),
            last_result_has("Alice", "Acme", "works_at"),
        ),
    ),
    Task(
        "folder_summary",
        "list a directory, read files and write a combined file",
        {
            "steps": [
                step("ls", "filesystem/list_directory", path="{FILES}/notes"),
                read("a", "{FILES}/notes/project.md"),
                read("b", "{FILES}/notes/ideas.md"),
                write(
                    "summary",
                    "{FILES}/out/summary.md",
                    "Notes folder:\n${steps.ls.content}\n\n${steps.a.content}\n${steps.b.content}",
                ),
            ]
        },
        file_has("out/summary.md", "todo.md", "Project Atlas", "web view"),
    ),
    Task(
        "meeting_times_into_memory",
        "convert a time between timezones and remember it in the knowledge graph",
        {
            "steps": [
                step(
                    "ny",
                    "time/convert_time",
                    source_timezone="UTC",
                    time="15:00",
                    target_timezone="America/New_York",
                ),
                step("tokyo", "time/convert_time", source_timezone="UTC", time="15:00", target_timezone="Asia/Tokyo"),
                step(
                    "remember",
                    "memory/create_entities",
                    entities=[
                        entity(
                            "standup",
                            "meeting",
                            "New York: ${steps.ny.target.datetime}",
                            "Tokyo: ${steps.tokyo.target.datetime}",
                        )
                    ],
                ),
            ]
        },
        memory_has({"standup": ("New York: 20", "T00:00:00+09:00")}),
    ),
    Task(
        "git_changes_to_file",
        "git status and the unstaged diff of a repository, written to a file",
        {
            "inputs": {"repo": "{REPO}"},
            "steps": [
                step("status", "git/git_status", repo_path="${inputs.repo}"),
                step("diff", "git/git_diff_unstaged", repo_path="${inputs.repo}"),
                write("save", "{FILES}/out/changes.md", "## Status\n${steps.status}\n\n## Diff\n${steps.diff}"),
            ],
        },
        file_has("out/changes.md", "README.md", "+" + UNSTAGED_LINE),
    ),
    Task(
        "sum_echo_to_file",
        "add two numbers, echo the result and save it to a file",
        {
            "steps": [
                step("sum", "everything/get-sum", a=2, b=40),
                step("echo", "everything/echo", message="${steps.sum}"),
                write("save", "{FILES}/out/echo.txt", "${steps.echo}"),
            ]
        },
        file_has("out/echo.txt", exact="Echo: The sum of 2 and 40 is 42."),
    ),
    Task(
        "daily_journal",
        "current time, recent git commits and a todo file combined into a journal file and a knowledge graph note",
        {
            "inputs": {"repo": "{REPO}"},
            "steps": [
                step("now", "time/get_current_time", timezone="UTC"),
                step("log", "git/git_log", repo_path="${inputs.repo}", max_count=2),
                read("todo", "{FILES}/notes/todo.md"),
                write(
                    "journal",
                    "{FILES}/out/journal.md",
                    "# ${steps.now.datetime}\n\n${steps.log}\n\n## Todo\n${steps.todo.content}",
                ),
                step(
                    "note",
                    "memory/create_entities",
                    ("journal",),
                    entities=[entity("journal", "log", "written at ${steps.now.datetime} to out/journal.md")],
                ),
            ],
        },
        all_of(
            file_has("out/journal.md", COMMITS[-1], "ask Sam about the logo"),
            memory_has({"journal": ("out/journal.md",)}),
        ),
    ),
    Task(
        "backup_notes",
        "create a directory and copy text files into it",
        {
            "steps": [
                step("dir", "filesystem/create_directory", path="{FILES}/backup"),
                read("a", "{FILES}/notes/project.md"),
                read("b", "{FILES}/notes/todo.md"),
                write("copy_a", "{FILES}/backup/project.md", "${steps.a.content}", ("dir",)),
                write("copy_b", "{FILES}/backup/todo.md", "${steps.b.content}", ("dir",)),
            ]
        },
        all_of(
            file_has("backup/project.md", exact=NOTES["project.md"]),
            file_has("backup/todo.md", exact=NOTES["todo.md"]),
        ),
    ),
    # Tasks whose size is known only at run time: a model calling tools directly needs a call per file, a plan
    # needs one foreach (the plan language): these are where one execute_chain saves the most turns.
    Task(
        "markdown_notes_to_memory",
        "list a folder, read the first line of every markdown note and remember each in the knowledge graph",
        {
            "inputs": {"dir": "{FILES}/notes"},
            "steps": [
                step("ls", "filesystem/list_directory", path="${inputs.dir}"),
                {"id": "md", "expr": MARKDOWN_FILES},
                {
                    "id": "heads",
                    "tool": "filesystem/read_text_file",
                    "foreach": "steps.md",
                    "arguments": {"path": "${inputs.dir}/${item}", "head": 1},
                },
                {
                    "id": "entities",
                    "foreach": "steps.heads",
                    "expr": "{'name': steps.md[index], 'entityType': 'note', 'observations': [lines(item.content)[0]]}",
                },
                step("save", "memory/create_entities", entities="${steps.entities}"),
            ],
        },
        memory_has({name: (text.splitlines()[0],) for name, text in NOTES.items()}),
        direct=(
            step("ls", "filesystem/list_directory", path="{FILES}/notes"),
            *(
                step(f"r{i}", "filesystem/read_text_file", path=f"{{FILES}}/notes/{n}", head=1)
                for i, n in enumerate(NOTES)
            ),
            step(
                "save",
                "memory/create_entities",
                entities=[entity(name, "note", text.splitlines()[0]) for name, text in NOTES.items()],
            ),
        ),
    ),
    Task(
        "notes_mentioning_sam_to_file",
        "list the notes of a folder, read them and write the names of those that mention Sam to a file",
        {
            "inputs": {"dir": "{FILES}/notes"},
            "steps": [
                step("ls", "filesystem/list_directory", path="${inputs.dir}"),
                {"id": "md", "expr": MARKDOWN_FILES},
                {
                    "id": "read",
                    "tool": "filesystem/read_text_file",
                    "foreach": "steps.md",
                    "arguments": {"path": "${inputs.dir}/${item}"},
                },
                {"id": "sam", "foreach": "steps.md", "expr": "steps.read[index].content.contains('Sam') ? item : ''"},
                {"id": "names", "expr": "steps.sam.filter(n, n != '').join('\\n')"},
                write("save", "{FILES}/out/sam.txt", "${steps.names}"),
            ],
        },
        file_has("out/sam.txt", "todo.md", lacking=("project.md", "ideas.md")),
        direct=(
            step("ls", "filesystem/list_directory", path="{FILES}/notes"),
            *(step(f"r{i}", "filesystem/read_text_file", path=f"{{FILES}}/notes/{n}") for i, n in enumerate(NOTES)),
            write("save", "{FILES}/out/sam.txt", "todo.md"),
        ),
    ),
)
