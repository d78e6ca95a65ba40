"""Dockerfile and docker-compose.yml read against the code (no container engine runs here)."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose_config() -> dict:
    assert shutil.which("docker-compose"), "docker-compose is missing: run ./scripts/setup-dev"
    env = os.environ | {
        "LETHE_IDENTITY_PEPPER": "compose-check",
        "LETHE_S3_SECRET_ACCESS_KEY": "compose-check-secret",
    }
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_and_complete():
    config = _compose_config()
    services = config["services"]
    assert {
        "postgres",
        "redis",
        "migrate",
        "api",
        "worker",
        "worker-gpu",
        "beat",
    } <= services.keys()
    gpu = services["worker-gpu"]
    assert gpu["command"][gpu["command"].index("-Q") + 1] == "gpu"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    cpu = services["worker"]
    assert cpu["command"][cpu["command"].index("-Q") + 1] == "cpu"
    assert services["migrate"]["command"] == ["lethe", "migrate"]
    for name in ("api", "worker", "worker-gpu", "beat"):
        env = services[name]["environment"]
        assert env["LETHE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["LETHE_BROKER_URL"].startswith("redis://")
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )


def _mounts(service: dict) -> list[tuple[str, str]]:
    """(named volume, target) of every named volume a service mounts (short or long syntax)."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source and not source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_artifacts_live_in_the_bucket_and_no_artifact_volume_is_shared():
    config = _compose_config()
    services = config["services"]
    assert {"minio", "minio-bucket"} <= services.keys()
    assert services["minio"]["image"].startswith("minio/minio")
    assert any(source == "miniodata" for source, _ in _mounts(services["minio"]))
    setup = " ".join(services["minio-bucket"]["command"])
    assert "mc mb" in setup and "mc version enable" in setup
    users = ("api", "worker", "worker-gpu", "beat")
    for name in users:
        env = services[name]["environment"]
        assert env["LETHE_ARTIFACT_URL"].startswith("s3://")
        assert env["LETHE_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert "LETHE_ARTIFACT_DIR" not in env
        cache = env["LETHE_ARTIFACT_CACHE_DIR"]
        assert services[name]["depends_on"]["minio-bucket"]["condition"] == (
            "service_completed_successfully"
        )
        # The cache is in the container's own storage, on no volume at all.
        for _, target in _mounts(services[name]):
            assert not Path(cache).is_relative_to(target), (name, target)
            assert not Path(target).is_relative_to(cache), (name, target)
    # Nothing is shared but the database, the broker and the bucket: no volume is mounted by
    # two services, and the signing keys reach every Lethe container as the same secret files.
    mounted_by: dict[str, set[str]] = {}
    for name, service in services.items():
        for source, _ in _mounts(service):
            mounted_by.setdefault(source, set()).add(name)
    assert not {source for source, names in mounted_by.items() if len(names) > 1}
    key_settings = {
        "LETHE_SIGNING_KEY_FILE": "certificate-signing-key",
        "LETHE_WEBHOOK_SIGNING_KEY_FILE": "webhook-signing-key",
        "LETHE_OPENDSR_KEY_FILE": "opendsr-key",
        "LETHE_OPENDSR_CERTIFICATE_FILE": "opendsr-certificate",
    }
    for name in users:
        env = services[name]["environment"]
        granted = {s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]}
        assert granted == set(key_settings.values()), name
        for setting, secret in key_settings.items():
            assert env[setting] == f"/run/secrets/{secret}"
    assert set(config["secrets"]) == set(key_settings.values())
    for secret in config["secrets"].values():
        assert "deploy/keys/" in secret["file"]


def test_compose_refuses_to_start_without_a_pepper():
    env = {k: v for k, v in os.environ.items() if k != "LETHE_IDENTITY_PEPPER"} | {
        "LETHE_S3_SECRET_ACCESS_KEY": "compose-check-secret"
    }
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LETHE_IDENTITY_PEPPER" in result.stderr


def test_commands_name_real_modules():
    """Every Celery app and ASGI factory the images and compose start can be imported."""
    texts = (ROOT / "Dockerfile").read_text() + (ROOT / "docker-compose.yml").read_text()
    celery_apps = set(re.findall(r'"-A", "([\w.]+)"', texts))
    factories = set(re.findall(r'"([\w.]+):(\w+)", "--factory"', texts))
    copies = re.findall(r"^COPY (.+) \./?\S*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert celery_apps and factories and copies, "the patterns no longer match the files"
    for module in celery_apps:
        assert hasattr(importlib.import_module(module), "celery_app")
    for module, attr in factories:
        assert callable(getattr(importlib.import_module(module), attr))
    for source in copies:
        for path in source.split():
            assert (ROOT / path).exists(), path


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
