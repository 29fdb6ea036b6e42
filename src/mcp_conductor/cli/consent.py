"""The person at the command line gives consent: ``run`` and ``runs resume`` list the steps that need it and ask
on the terminal before anything runs; ``--yes`` approves; with neither a terminal nor ``--yes``, the run is
refused (``consent_required``, exit code 2: the command lacks what it needs, as with a bad argument) with the
same message a host gets, naming the config line that would allow the steps."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a command runs, not when the parser is built (``--help`` stays light)
    from mcp_conductor.server.conductor import Conductor
    from mcp_conductor.server.execution.consent import ApproveFn
    from mcp_conductor.server.execution.results import RunOptions

NO_TERMINAL = "there is no terminal to ask on (pass --yes to approve)"


def add_yes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="approve the steps that need consent (destructive tools, consent.ask patterns) without asking",
    )


async def ask_person(
    conductor: Conductor,
    *,
    plan_id: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    options: RunOptions,
    assume_yes: bool,
) -> ApproveFn:
    """Ask on the terminal (stderr, stdin) about the steps this run would need consent for; the approver that
    carries the answer for exactly those steps."""
    import anyio.to_thread

    from mcp_conductor.server.execution.consent import ConsentDecision, only_listed
    from mcp_conductor.server.planning.consent import form_text

    steps = await conductor.consent_needed(plan_id=plan_id, inputs=inputs, options=options)
    if not steps or assume_yes:
        return only_listed(steps, ConsentDecision(approved=True, who="cli"))
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return only_listed(steps, ConsentDecision(approved=None, who="cli", why=NO_TERMINAL))
    print(form_text(steps), file=sys.stderr)
    print("Run them? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    approved = answer.strip().lower() in ("y", "yes")
    return only_listed(steps, ConsentDecision(approved=approved, who="cli"))
