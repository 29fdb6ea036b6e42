"""The Temporal engine (``mcp-conductor[temporal]``): the same validated plans, run as durable workflows.

``engine.TemporalEngine`` (the front's side of the ``RunEngine`` seam) starts one workflow per run, with the run
id as the workflow id; ``workflow.RunPlan`` (built from the ``workflow_*`` parts) interprets the plan as data (its
input); ``activities`` make the downstream calls in ``worker`` processes, each with one downstream pool.
``protocol`` holds the plain values that cross between them. Nothing outside this package imports ``temporalio``;
importing the package itself does not either, so the modules are imported one by one where needed.
"""
