"""One module per native backend API. Each defines ``ADAPTERS: dict[str, Adapter]`` and
``ROWS: list[BackendDef]``; ``eldric.backends.table`` finds the modules by listing this
package, so adding an API is adding a module here (and its pure translation under
``eldric/wire/native/``)."""
