"""Running validated plans: the engine seam, the local executor and a run's bookkeeping, retry policy, step
values, and the chain service (plan ids, idempotent run ids, resume) that the front calls.

May import ``planning``, ``store``, ``discovery`` and ``client_pool``; never the MCP front.
"""
