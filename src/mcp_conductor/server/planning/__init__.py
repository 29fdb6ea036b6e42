"""The pure planner: plan models, ``${...}`` references, argument checks against input schemas, schema paths,
and the dependency graph (networkx lives here and nowhere else).

No I/O, no anyio, no logging. May import ``client_pool.catalog`` (tool definitions) and ``discovery.metrics``
(latency estimates); never ``execution``, ``store`` or the MCP front.
"""
