"""How eldric reaches every backend it knows: one table, native adapters, their calls.

- ``table.py``: the one table of backend kinds (BackendDef rows): OpenAI-compatible
  presets (NIM, TabbyAPI, Groq, …) and the kinds with a native API, with their default
  URL, auth, model list and capabilities. The worker's KINDS and the cloud role's
  providers are derived from it, `eldric backends` prints it, README's backend table is
  checked against it.
- ``egress.py``: the contract of a native adapter (Adapter, Egress, Outbound, Reach): a
  pure translation from OpenAI's API to a backend's own and back.
- ``native/<api>.py``: one module per native API: its Adapter(s) and its table rows
  (found by table.py; the pure translation itself lives in ``eldric/wire/native/``).
- ``call.py``: the I/O of one native request (auth or signing, send, failover before the
  first byte, the reply through the egress and, for a client API eldric translates,
  through its translator too).

A shared layer: it imports stream, bus, wire and the top-level helpers, never a role.
"""
