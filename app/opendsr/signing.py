"""The OpenDSR processor key and certificate, and `X-OpenDSR-Signature`.

The signature is base64 of an RSA PKCS#1 v1.5 (or ECDSA, for an EC key) SHA-256 signature over
the exact bytes of the body. Production configures a CA-issued certificate for the processor
domain (`LETHE_OPENDSR_KEY_FILE`, `LETHE_OPENDSR_CERTIFICATE_FILE`); without them a self-signed
pair is generated under the var dir on first use, which the specification does not accept
outside development. Importing this module makes it the signer of OpenDSR callback deliveries.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from app.core.config import get_settings
from app.core.db import utcnow
from app.webhooks.models import Target
from app.webhooks.signing import Outgoing, create_once, register_signer

DOMAIN_HEADER = "X-OpenDSR-Processor-Domain"
SIGNATURE_HEADER = "X-OpenDSR-Signature"

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def self_signed_certificate_pem(key: SigningKey, domain: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = utcnow()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@lru_cache
def key_and_certificate() -> tuple[SigningKey, bytes]:
    settings = get_settings()
    if settings.opendsr_key_file and settings.opendsr_certificate_file:
        key_pem = settings.opendsr_key_file.read_bytes()
        cert_pem = settings.opendsr_certificate_file.read_bytes()
    else:
        folder = settings.var_dir / "opendsr"
        key_pem = create_once(folder / "processor-key.pem", new_key_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        domain = settings.opendsr_processor_domain
        cert_pem = create_once(
            folder / "processor-cert.pem",
            lambda: self_signed_certificate_pem(key, domain),  # type: ignore[arg-type]
        )
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise RuntimeError("the OpenDSR key must be an RSA or EC private key")
    return key, cert_pem


def certificate_pem() -> bytes:
    return key_and_certificate()[1]


def sign(body: bytes) -> str:
    key, _ = key_and_certificate()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def signed_headers(body: bytes) -> dict[str, str]:
    return {
        DOMAIN_HEADER: get_settings().opendsr_processor_domain,
        SIGNATURE_HEADER: sign(body),
    }


def _callback_headers(outgoing: Outgoing) -> dict[str, str]:
    return signed_headers(outgoing.body)


register_signer(Target.OPENDSR, _callback_headers)
