"""`lethe keys generate`: the key files a deployment hands its containers, each one loadable
by the signer that reads it, written once and never overwritten."""

from __future__ import annotations

import base64
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import OKPKey

from tests.conftest import REPO_ROOT

NAMES = (
    "certificate-signing-key.pem",
    "webhook-signing-key",
    "opendsr-key.pem",
    "opendsr-certificate.pem",
)


def _lethe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from app.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env)


def test_generated_keys_are_secret_loadable_and_never_overwritten(tmp_path):
    keys = tmp_path / "keys"
    made = _lethe("keys", "generate", str(keys), "--opendsr-domain", "privacy.example.com")
    assert made.returncode == 0, made.stderr
    for name in NAMES:
        assert (keys / name).stat().st_mode & 0o777 == 0o600
    assert OKPKey.import_key((keys / NAMES[0]).read_bytes()).as_dict()["crv"] == "Ed25519"
    assert (keys / NAMES[1]).read_text().startswith("whsk_")
    private = serialization.load_pem_private_key((keys / NAMES[2]).read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate((keys / NAMES[3]).read_bytes())
    assert certificate.public_key().public_numbers() == private.public_key().public_numbers()
    assert "privacy.example.com" in certificate.subject.rfc4514_string()

    before = {name: (keys / name).read_bytes() for name in NAMES}
    again = _lethe("keys", "generate", str(keys))
    assert again.returncode == 1
    assert "already holds" in again.stderr
    assert {name: (keys / name).read_bytes() for name in NAMES} == before


def test_the_webhook_signer_reads_its_key_file(tmp_path, monkeypatch):
    from app.core.config import get_settings
    from app.webhooks.signing import callback_signing_key

    keys = tmp_path / "keys"
    assert _lethe("keys", "generate", str(keys)).returncode == 0
    monkeypatch.setenv("LETHE_WEBHOOK_SIGNING_KEY_FILE", str(keys / "webhook-signing-key"))
    get_settings.cache_clear()
    callback_signing_key.cache_clear()
    try:
        written = (keys / "webhook-signing-key").read_text().strip()
        seed = base64.b64decode(written.removeprefix("whsk_"))
        assert callback_signing_key().private_bytes_raw() == seed
    finally:
        get_settings.cache_clear()
        callback_signing_key.cache_clear()
