"""`lethe keys generate`: the signing keys a deployment hands every API and worker container as
secret files, so that no volume has to be shared for them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

keys_cli = typer.Typer(help="Signing keys for a deployment.", no_args_is_help=True)

CERTIFICATE_KEY = "certificate-signing-key.pem"
WEBHOOK_KEY = "webhook-signing-key"
OPENDSR_KEY = "opendsr-key.pem"
OPENDSR_CERTIFICATE = "opendsr-certificate.pem"


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@keys_cli.command("generate")
def generate(
    directory: Annotated[Path, typer.Argument(help="Where to write the key files (created).")],
    opendsr_domain: Annotated[
        str, typer.Option(help="The processor domain named in the OpenDSR certificate.")
    ] = "localhost",
) -> None:
    """Write new keys: certificates (Ed25519), webhook callbacks (Ed25519), OpenDSR (RSA and a
    self-signed certificate; use one issued for your domain in production). Existing files are
    never overwritten."""
    from cryptography.hazmat.primitives import serialization
    from joserfc.jwk import OKPKey

    from app.opendsr.signing import new_key_pem, self_signed_certificate_pem
    from app.webhooks.signing import new_signing_key

    names = (CERTIFICATE_KEY, WEBHOOK_KEY, OPENDSR_KEY, OPENDSR_CERTIFICATE)
    existing = [name for name in names if (directory / name).exists()]
    if existing:
        typer.echo(f"error: {directory} already holds {', '.join(existing)}", err=True)
        raise typer.Exit(1)
    directory.mkdir(parents=True, exist_ok=True)
    opendsr_key = new_key_pem()
    loaded = serialization.load_pem_private_key(opendsr_key, password=None)
    files = {
        CERTIFICATE_KEY: OKPKey.generate_key("Ed25519").as_pem(private=True),
        WEBHOOK_KEY: new_signing_key(),
        OPENDSR_KEY: opendsr_key,
        OPENDSR_CERTIFICATE: self_signed_certificate_pem(loaded, opendsr_domain),  # type: ignore[arg-type]
    }
    for name, data in files.items():
        _write_secret(directory / name, data)
    typer.echo(f"wrote {', '.join(files)} to {directory}")
