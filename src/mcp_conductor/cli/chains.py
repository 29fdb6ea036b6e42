"""``mcp-conductor chains``: the saved chains: ``list``, ``show``, ``delete``, ``export``, ``import``.

Chains are saved by ``plan_chain``'s ``save_as`` (or ``mcp-conductor plan FILE --save-as NAME``); these commands
read and change the state directory only, without starting any server (``discover`` shows which chains are
stale against today's tools).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_conductor.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_state_dir_option,
    read_json_file,
    state_dir,
    write_output,
)
from mcp_conductor.cli.words import plural

if TYPE_CHECKING:
    from mcp_conductor.server.store.chains import ChainStore, SavedChain

_FORMATTER = argparse.RawDescriptionHelpFormatter
_EXPORT_HINT = "make one with `mcp-conductor chains export NAME -o FILE`"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chains",
        help="list, show, delete, export and import saved chains",
        description="The chains saved with plan_chain's save_as, kept in the state directory (see --state-dir).",
        epilog="examples:\n  mcp-conductor chains list\n  mcp-conductor chains show notes-to-memory\n"
        "  mcp-conductor chains export notes-to-memory -o chain.json && "
        "mcp-conductor chains import chain.json --state-dir other/",
        formatter_class=_FORMATTER,
    )
    p.set_defaults(func=usage, chains_parser=p)
    actions = p.add_subparsers(dest="chains_command", metavar="ACTION")

    ls = actions.add_parser("list", help="every saved chain, newest version", description="List the saved chains.")
    add_state_dir_option(ls)
    ls.add_argument("--json", action="store_true", help="print a JSON list of {name, version, versions, ...}")
    ls.set_defaults(func=list_chains)

    show = actions.add_parser(
        "show",
        help="one chain: description, inputs, steps, versions, runs",
        description="Show a saved chain (its newest version, or NAME@VERSION).",
        epilog="examples:\n  mcp-conductor chains show notes-to-memory\n"
        "  mcp-conductor chains show notes@1a2b3c4d --json",
        formatter_class=_FORMATTER,
    )
    add_state_dir_option(show)
    show.add_argument("chain", metavar="NAME[@VERSION]")
    show.add_argument("--json", action="store_true", help="print the version as `chains export` writes it")
    show.set_defaults(func=show_chain)

    delete = actions.add_parser(
        "delete", help="delete a chain (every version) or one version", description="Delete a saved chain."
    )
    add_state_dir_option(delete)
    delete.add_argument("chain", metavar="NAME[@VERSION]")
    delete.set_defaults(func=delete_chain)

    ex = actions.add_parser(
        "export",
        help="write a chain (every version, or one) as JSON",
        description="Write a saved chain as JSON, for `chains import` (every version, oldest first, or NAME@VERSION).",
        epilog="examples:\n  mcp-conductor chains export notes-to-memory > chain.json",
        formatter_class=_FORMATTER,
    )
    add_state_dir_option(ex)
    ex.add_argument("chain", metavar="NAME[@VERSION]")
    ex.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    ex.set_defaults(func=export_chain)

    im = actions.add_parser(
        "import",
        help="store the chain of a `chains export` file",
        description="Store the versions of a `chains export` file; each is checked first, and importing a version "
        "that is stored already changes nothing.",
    )
    add_state_dir_option(im)
    im.add_argument("file", metavar="FILE", help="a `chains export` file; '-' reads stdin")
    im.set_defaults(func=import_chain)


def usage(args: argparse.Namespace) -> int:
    """``chains`` without an action: its help, on stderr."""
    args.chains_parser.print_help(sys.stderr)
    return EXIT_USAGE


async def _with_chains(directory: Path, action: Any) -> Any:
    from mcp_conductor.server.store.chains import ChainStore
    from mcp_conductor.server.store.store import RunStore

    async with RunStore.open(directory) as store:
        return await action(ChainStore(store))


def _ref(text: str) -> tuple[str, str | None]:
    from mcp_conductor.server.planning.saved_chains import ChainRefError, parse_ref

    try:
        ref = parse_ref(text)
    except ChainRefError as exc:
        raise UsageError(exc.message, hint=exc.hint) from exc
    return ref.name, ref.version


def _unknown(text: str, directory: Path) -> UsageError:
    return UsageError(
        f"no saved chain {text!r} in {directory}",
        hint="`mcp-conductor chains list` shows the saved chains (use --state-dir for another directory)",
    )


def list_chains(args: argparse.Namespace) -> int:
    import anyio

    async def read(chains: ChainStore) -> list[dict[str, Any]]:
        rows = []
        for chain in await chains.newest():
            rows.append(
                {
                    "name": chain.name,
                    "version": chain.version,
                    "versions": len(await chains.versions(chain.name)),
                    "inputs": list((chain.inputs_schema.get("properties") or {}).keys()),
                    "steps": len(chain.plan.get("steps") or ()),
                    "description": chain.description,
                }
            )
        return rows

    rows = anyio.run(_with_chains, state_dir(args), read)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no saved chains (save one with plan_chain's save_as)")
        return EXIT_OK
    from mcp_conductor.cli import console as ui

    console = ui.out()
    table = ui.table(console, "chain", "version", "versions", "steps", "inputs", "description", right=("versions",))
    for row in rows:
        description = row["description"] if len(row["description"]) <= 60 else row["description"][:57] + "..."
        table.add_row(
            row["name"], row["version"], str(row["versions"]), str(row["steps"]), ", ".join(row["inputs"]), description
        )
    ui.print_table(console, table)
    return EXIT_OK


def show_chain(args: argparse.Namespace) -> int:
    import anyio

    name, version = _ref(args.chain)
    directory = state_dir(args)

    async def read(chains: ChainStore) -> tuple[SavedChain | None, list[SavedChain], list[Any]]:
        return await chains.get(name, version), await chains.versions(name), await chains.runs(chain=name)

    chain, versions, runs = anyio.run(_with_chains, directory, read)
    if chain is None:
        raise _unknown(args.chain, directory)
    if args.json:
        print(json.dumps(chain.export(), indent=2, ensure_ascii=False))
        return EXIT_OK
    lines = [f"chain/{chain.name}@{chain.version}  ({chain.effect}, saved {chain.created_at.replace('T', ' ')[:19]})"]
    if chain.description:
        lines.append(f"  {chain.description}")
    properties = chain.inputs_schema.get("properties") or {}
    required = set(chain.inputs_schema.get("required") or ())
    lines.append("inputs:" + ("" if properties else " none"))
    for key, schema in properties.items():
        kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
        default = chain.plan.get("inputs", {}).get(key)
        lines.append(f"  {key}: {kind}{' (required)' if key in required else ''}  default {json.dumps(default)}")
    lines.append("steps:")
    for step in chain.plan.get("steps") or ():
        lines.append(f"  {step['id']}: {step.get('tool') or 'expr ' + str(step.get('expr'))}")
    lines.append(f"outputs: {', '.join(chain.outputs) or 'none'}")
    newest = versions[0].version if versions else None
    marks = [f"{v.version}{' (newest)' if v.version == newest else ''}" for v in versions]
    lines.append(f"versions, newest first: {', '.join(marks)}")
    sub = sum(1 for r in runs if r.parent_run_id is not None)
    lines.append(f"runs: {plural(len(runs), 'run')} ({sub} as a sub-run)" if runs else "runs: none yet")
    print("\n".join(lines))
    return EXIT_OK


def delete_chain(args: argparse.Namespace) -> int:
    import anyio

    name, version = _ref(args.chain)
    directory = state_dir(args)

    async def delete(chains: ChainStore) -> int:
        return await chains.delete(name, version)

    deleted = anyio.run(_with_chains, directory, delete)
    if not deleted:
        raise _unknown(args.chain, directory)
    print(f"deleted {plural(deleted, 'version')} of chain {name}", file=sys.stderr)
    return EXIT_OK


def export_chain(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.server.execution.library import EXPORT_FORMAT

    name, version = _ref(args.chain)
    directory = state_dir(args)

    async def read(chains: ChainStore) -> list[SavedChain]:
        if version is not None:
            found = await chains.get(name, version)
            return [found] if found is not None else []
        return list(reversed(await chains.versions(name)))

    versions = anyio.run(_with_chains, directory, read)
    if not versions:
        raise _unknown(args.chain, directory)
    document = {"format": EXPORT_FORMAT, "name": name, "versions": [v.export() for v in versions]}
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    write_output(text, args.output, f"wrote chain {name} ({plural(len(versions), 'version')})")
    return EXIT_OK


def import_chain(args: argparse.Namespace) -> int:
    import anyio

    from mcp_conductor.server.execution.library import ChainImportError, import_chains, parse_export

    raw = read_json_file(args.file, "chain export", hint=_EXPORT_HINT)
    try:
        versions = parse_export(raw)
    except ChainImportError as exc:
        raise UsageError(f"{args.file}: {exc.message}", hint=exc.hint) from exc
    directory = state_dir(args)

    async def store(chains: ChainStore) -> list[str]:
        return await import_chains(chains, versions)

    try:
        done = anyio.run(_with_chains, directory, store)
    except ChainImportError as exc:
        raise UsageError(f"{args.file}: {exc.message}", hint=exc.hint) from exc
    for line in done:
        print(line, file=sys.stderr)
    print(f"imported {plural(len(versions), 'version')} into {directory}", file=sys.stderr)
    return EXIT_OK
