"""The fast lane: eldric's own HTTP/1.1 server for the inference routes.

Why: on the 3-hop chain (edge -> router -> worker) every hop paid aiohttp's server path,
about 25 µs of CPU per request out of a bare relay's 55 µs (measured with a minimal
httptools relay at 30 µs). On a box whose cores the hops share, that is throughput.

How it stays small and safe:

- each role's listening socket is served by ``FastProtocol``; it frames requests itself
  (head up to the blank line, then exactly Content-Length bytes) and lets httptools
  (llhttp) validate and split the head;
- only plain requests take the fast lane: ``POST`` to a path the role registered with
  ``fast_post()``, HTTP/1.1, a Content-Length body (or none) within the size limit, no
  Transfer-Encoding, Expect or Upgrade, no percent-escapes in the path. Anything else, and
  anything malformed, hands the connection to aiohttp, unchanged, from the first byte of
  that request on; aiohttp answers it exactly as it did before this lane existed;
- the handlers are the same coroutines aiohttp calls (they only use what ``FastRequest``
  offers), wrapped in the same middleware (request id, errors, access line, metrics).

Modules: server.py (listening, routes, drain), protocol.py (one connection), request.py
(FastRequest, its sink and Lane), reply.py (heads and whole replies as bytes),
aiohttp_glue.py (every use of aiohttp's internals). The lane sits on top: it imports
eldric.http (the middleware) and eldric.exchange; neither imports it back.
"""
