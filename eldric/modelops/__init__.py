"""Model files on a worker: downloads into a models directory and what it holds.

A shared layer (no role imports it from another role): the worker's model operations
(eldric.modelops.ops/routes) and its embedded backend both use it.
"""
