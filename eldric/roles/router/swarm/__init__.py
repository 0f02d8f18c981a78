"""The router's swarm: one request fanned out to several members, their answers combined
by a strategy (strategies/), each member routed like any request (members.py)."""
