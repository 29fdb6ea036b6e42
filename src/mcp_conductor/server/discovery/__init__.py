"""Tool search: the BM25F index over the catalog, its text analysis, and per-tool call metrics.

Owns ranking (``index``), tokenizing (``text``), latency and success counters (``metrics``) and the shape of a
``discover_tools`` answer (``results``, ``search``). May import ``client_pool`` (the catalog) and nothing else of
the server. Pure except for what ``search`` reads from the pool's status.
"""
