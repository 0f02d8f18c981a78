"""Edge plugins: each server-side plugin a supervised child process (process.py)
speaking the JSON-RPC protocol of eldric/plugin.py; see docs/plugins.md."""
