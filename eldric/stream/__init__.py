"""THE stream-forwarding core every relaying hop uses (see forward.py)."""

from eldric.errors import UpstreamFailure  # its home; re-exported for the roles that relay
from eldric.stream.forward import Target, Timeouts, forward, with_fields
from eldric.stream.head import decode_head
from eldric.stream.upstream_errors import normalise

__all__ = ["Target", "Timeouts", "UpstreamFailure", "decode_head", "forward", "normalise",
           "with_fields"]
