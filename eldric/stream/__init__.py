"""THE stream-forwarding core every relaying hop uses (see forward.py)."""

from eldric.errors import UpstreamFailure  # its home; re-exported for the roles that relay
from eldric.stream.forward import Target, Timeouts, forward, with_fields
from eldric.stream.upstream_errors import normalise
from eldric.wire.head import decode_head  # moved to wire/; kept here for older imports

__all__ = ["Target", "Timeouts", "UpstreamFailure", "decode_head", "forward", "normalise",
           "with_fields"]
