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
    env = os.environ | {"LETHE_IDENTITY_PEPPER": "compose-check"}
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


def test_compose_refuses_to_start_without_a_pepper():
    env = {k: v for k, v in os.environ.items() if k != "LETHE_IDENTITY_PEPPER"}
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
