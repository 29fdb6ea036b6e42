"""The SQLite run store: connections and their errors, rows <-> records and the statements, schema and
migrations, run and step records, commit batching of a run's step writes, and where state lives on disk.

May import ``discovery.metrics`` (persisted tool metrics) and ``client_pool``; never ``planning``'s or
``execution``'s modules or the MCP front.
"""
