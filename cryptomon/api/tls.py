"""HTTPS and WSS for the API: ``api.tls_cert_file`` + ``api.tls_key_file`` (PEM).

The context is the standard library's server default (TLS 1.2 or newer, the library's
cipher choice); a certificate or key that cannot be read or does not match is a
:class:`~cryptomon.errors.ConfigError` naming the files and the reason.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptomon.errors import ConfigError, Problem


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context with the certificate chain of ``cert_file``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except FileNotFoundError:
        # ssl's FileNotFoundError carries no file name: name the setting's own value
        missing, path = (
            ("api.tls_cert_file", cert_file)
            if not cert_file.is_file()
            else ("api.tls_key_file", key_file)
        )
        raise ConfigError([Problem(missing, str(path), "a readable PEM file")]) from None
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            [
                Problem(
                    "api.tls_cert_file",
                    f"{cert_file} + {key_file}",
                    f"a PEM certificate and its matching private key ({reason})",
                )
            ]
        ) from None
    return context
