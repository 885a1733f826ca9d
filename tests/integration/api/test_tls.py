"""api.tls_cert_file / api.tls_key_file: the API serves HTTPS and WSS with a self-signed
certificate made here; plain HTTP is refused; bad files are config errors naming them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.errors import ConfigError
from cryptomon.hub import Hub
from tests.integration.api.conftest import READ, StartApi, api_config, bearer


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cryptomon test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.asyncio
async def test_https_and_wss_with_a_self_signed_certificate(
    start_api: StartApi, tmp_path: Path
) -> None:
    """A client trusting the certificate gets /health over HTTPS (with HSTS, so a browser
    never sends its token over plain HTTP to this host later) and a WebSocket subscription
    over WSS; a plain HTTP request gets no answer."""
    cert, key = self_signed(tmp_path)
    run = await start_api(config=api_config(tls_cert_file=str(cert), tls_key_file=str(key)))
    assert run.url.startswith("https://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession(headers=bearer(READ)) as https:
        async with https.get(run.url + "/health", ssl=trust) as r:
            assert r.status == 200
            assert (await r.json())["status"] == "ok"
            assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
        ws_url = run.url.replace("https://", "wss://") + "/ws"
        async with https.ws_connect(ws_url, ssl=trust) as ws:
            await ws.send_str(json.dumps({"msg_type": "Subscribe", "data": {"channel": "trades"}}))
            assert (await ws.receive_json(timeout=10))["channel"] == "subscribed"
        plain = run.url.replace("https://", "http://") + "/health"
        with pytest.raises(aiohttp.ClientError):
            async with https.get(plain) as r:
                await r.read()


def test_cert_without_key_is_a_config_error() -> None:
    """tls_cert_file without tls_key_file names both keys."""
    with pytest.raises(ValidationError, match="tls_cert_file and tls_key_file go together"):
        api_config(tls_cert_file="/x/cert.pem")


@pytest.mark.asyncio
async def test_unreadable_or_mismatched_files_are_config_errors(tmp_path: Path) -> None:
    """A missing key file, or a key that is not the certificate's, fails the start naming
    the setting, not with a traceback from ssl."""
    cert, _ = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = self_signed(other)
    for key_file, expected in (("/nope.pem", "api.tls_key_file"), (other_key, "matching")):
        config = api_config(tls_cert_file=str(cert), tls_key_file=str(key_file))
        server = ApiServer(config=config, hub=Hub(), clock=LiveClock())
        with pytest.raises(ConfigError, match=expected):
            await server.start()
        await server.stop()
