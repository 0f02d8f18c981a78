"""How the edge listens: HTTPS with a certificate, or plain HTTP with --no-tls."""

from __future__ import annotations

import ssl

from eldric.errors import ConfigError
from eldric.roles.edge.config import EdgeConfig


def listen(cfg: EdgeConfig) -> tuple[int, ssl.SSLContext | None]:
    if cfg.no_tls:
        return cfg.http_port, None
    if cfg.tls.mode == "acme":
        raise ConfigError("tls.mode 'acme' is not supported yet: use mode 'manual' with "
                          "--cert/--key, or --no-tls behind a proxy that terminates TLS")
    if not cfg.tls.cert_file or not cfg.tls.key_file:
        raise ConfigError("the edge serves HTTPS: give --cert and --key (tls.cert_file, "
                          "tls.key_file), or --no-tls --http-port 8080 for plain HTTP")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.tls.cert_file, cfg.tls.key_file)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS: {exc.filename}: not found") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS: cannot use certificate {cfg.tls.cert_file} with key "
                          f"{cfg.tls.key_file}: {exc}") from None
    return cfg.port, ctx
