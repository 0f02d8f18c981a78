"""The tunnels on /metrics, read at scrape time (nothing counted on the request path)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from eldric.roles.edge.tunnel.registry import Tunnels


def register(registry: CollectorRegistry, tunnels: Tunnels) -> None:
    Gauge("eldric_edge_tunnels", "Tunnels connected to this edge",
          registry=registry).set_function(lambda: len(tunnels.by_id))
    Gauge("eldric_edge_tunnel_queued", "Requests waiting for a tunnelled worker's poll",
          registry=registry).set_function(tunnels.queued)
    Gauge("eldric_edge_tunnel_in_flight", "Requests a tunnelled worker took and has not "
          "finished answering", registry=registry).set_function(tunnels.in_flight)
