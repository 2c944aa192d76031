"""Evacuations: every service of a region moved by one durable run (`failover evacuate`).

- `models`: the plan file (`kind: Evacuation`), validated by `loader` with file:line:col;
- `runs`: the workflow's input and progress (plain data, importable by workflow code);
- `rules`: the pure rules the workflow and the views share (order, pre-approval, outcome,
  critical path);
- `resolve`: a plan resolved for one run (each service's runbook resolved, leases, overlaps);
- `report`: the report joining every service;
- `client`: starting an evacuation and talking to a running one.
"""
