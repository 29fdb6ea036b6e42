"""The engine flags ``serve`` and ``worker`` share: ``--engine``, ``--temporal-address``, ``--temporal-namespace``,
``--task-queue``. They override ``conductor.engine`` in the config file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mcp_conductor.errors import ConfigError

if TYPE_CHECKING:
    from mcp_conductor.client_pool.config_models import ConductorConfig


def add_temporal_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temporal-address", metavar="HOST:PORT", help="the Temporal frontend (default: the config's)")
    p.add_argument("--temporal-namespace", metavar="NS", help="the Temporal namespace (default: default)")
    p.add_argument("--task-queue", metavar="Q", help="the task queue of the workers (default: mcp-conductor)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=["local", "temporal"],
        help="what runs plans: local (in this process, the default) or temporal (a Temporal cluster and workers)",
    )
    add_temporal_options(p)


def with_engine(config: ConductorConfig, args: argparse.Namespace, *, kind: str | None = None) -> ConductorConfig:
    """``config`` with the engine flags applied (``kind`` forces the engine kind, as ``worker`` does).

    Raises:
        ConfigError: the Temporal engine without an address.
    """
    engine = config.engine
    updates = {
        "kind": kind or getattr(args, "engine", None),
        "address": args.temporal_address,
        "namespace": args.temporal_namespace,
        "task_queue": args.task_queue,
    }
    fields = {key: value for key, value in updates.items() if value is not None}
    merged = {**engine.model_dump(), **fields}
    if merged["kind"] == "temporal" and not merged["address"]:
        raise ConfigError(
            "the temporal engine needs the address of a Temporal frontend",
            hint="pass --temporal-address HOST:PORT (`mcp-conductor temporal dev` starts one on 127.0.0.1:7233), "
            "or set conductor.engine.address in the config",
        )
    return config.model_copy(update={"engine": type(engine).model_validate(merged)})
