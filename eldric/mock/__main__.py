"""`python -m eldric.mock --port 9100`: the mock backend alone (for benchmarks)."""

import click
from aiohttp import web

from eldric.mock import make_app


@click.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=9100, type=int)
@click.option("--tokens", default=16, type=int, help="tokens per reply")
@click.option("--token-delay", default=0.0, type=float, help="ms between tokens")
def main(host: str, port: int, tokens: int, token_delay: float) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(tokens, token_delay), host=host, port=port, access_log=None,
                print=None)


main()
