"""How the edge listens: HTTPS with a certificate, or plain HTTP with --no-tls."""

from __future__ import annotations

import ssl

from eldric.config import field_specs
from eldric.errors import ConfigError
from eldric.roles.edge.config import EdgeConfig


def _option(name: str) -> str:
    """`tls.cert_file (--cert)`: the file key and the flag, as a person would set it."""
    flag = next(s.flag for s in field_specs(EdgeConfig) if s.name == name)
    return f"{name} (--{flag})"


def _readable(name: str, path: str) -> None:
    """Refuse a certificate or key file that cannot be read, naming the option and path
    (ssl's own error names neither the option nor, for a missing file, the path)."""
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise ConfigError(f"edge: {_option(name)} {path}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"edge: {_option(name)} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"edge: {_option(name)} {path}: cannot be read "
                          f"({exc.strerror or exc})") from None


def listen(cfg: EdgeConfig) -> tuple[int, ssl.SSLContext | None]:
    if cfg.no_tls:
        return cfg.http_port, None
    if cfg.tls.mode == "acme":
        raise ConfigError("tls.mode 'acme' is not supported yet: use mode 'manual' with "
                          "--cert/--key, or --no-tls behind a proxy that terminates TLS")
    if not cfg.tls.cert_file or not cfg.tls.key_file:
        raise ConfigError("the edge serves HTTPS: give --cert and --key (tls.cert_file, "
                          "tls.key_file), or --no-tls --http-port 8080 for plain HTTP")
    _readable("tls.cert_file", cfg.tls.cert_file)
    _readable("tls.key_file", cfg.tls.key_file)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.tls.cert_file, cfg.tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"edge: cannot use certificate {_option('tls.cert_file')} "
                          f"{cfg.tls.cert_file} with key {_option('tls.key_file')} "
                          f"{cfg.tls.key_file}: {exc}") from None
    return cfg.port, ctx
