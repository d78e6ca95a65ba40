"""All settings in one place, read from `LETHE_*` environment variables (or a `.env` file)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_BROKER = "filesystem://"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LETHE_", env_file=".env", extra="ignore")

    var_dir: Path = Field(Path("var"), description="Working directory of the embedded default.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite under var_dir.")
    broker_url: str = Field(
        EMBEDDED_BROKER, description="Celery broker; `filesystem://` is the embedded local queue."
    )
    broker_key_prefix: str = Field(
        "", description="Prefix of every Redis key Celery uses, to share one Redis safely."
    )
    identity_pepper: SecretStr | None = Field(
        None, description="HMAC key for identity hashes; required outside the embedded default."
    )
    due_months: int = Field(1, ge=1, le=3, description="Months from receipt to the legal due date.")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body.")
    max_records_per_call: int = Field(50_000, ge=1, description="Records accepted by one POST.")
    idempotency_ttl_hours: int = Field(24, ge=1, description="How long Idempotency-Key replays.")
    idempotency_lease_seconds: int = Field(
        60,
        ge=1,
        description="On SQLite, how long a claimed Idempotency-Key may stay in flight before a "
        "retry takes it over (Postgres knows at once when its request is gone).",
    )
    log_level: str = Field("INFO", description="Python log level name.")
    log_json: bool = Field(True, description="JSON log lines (false: human-readable).")
    artifact_dir: Path | None = Field(
        None, description="Where checkpoints and model weights live; empty means var_dir/artifacts."
    )
    artifact_url: str = Field(
        "",
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?)?$",
        description="`s3://bucket/prefix`: artifacts in an S3-compatible bucket (versioning on); "
        "empty means the directory `artifact_dir`.",
    )
    s3_endpoint_url: str = Field(
        "", description="Endpoint of an S3-compatible service (MinIO); empty means AWS S3."
    )
    s3_region: str = Field("us-east-1", description="Region of the artifact bucket.")
    s3_access_key_id: str = Field(
        "", description="Access key of the artifact bucket; empty uses boto3's own credentials."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret key that goes with `s3_access_key_id`."
    )
    s3_multipart_threshold_bytes: int = Field(
        64 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Artifacts at least this large are uploaded in parts.",
    )
    artifact_cache_dir: Path | None = Field(
        None,
        description="Each worker's local copy of artifacts read from S3; empty means "
        "var_dir/artifact-cache.",
    )
    artifact_cache_bytes: int = Field(
        10 * 1024**3, ge=0, description="Size limit of the artifact cache (least recently used go)."
    )
    artifact_cache_sweep_seconds: float = Field(
        600.0,
        gt=0,
        description="How often beat has every worker drop cached copies of purged artifacts.",
    )
    signing_key_file: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) for certificates; generated under var_dir if empty.",
    )
    job_lease_seconds: int = Field(
        120, ge=2, description="A running job's lease, renewed by its heartbeat."
    )
    job_max_attempts: int = Field(3, ge=1, description="Runs of a job before it is failed.")
    batching_window_seconds: float = Field(
        0.0, ge=0, description="How long a model's next unlearning job waits to gather requests."
    )
    exact_batch_size: int = Field(
        20,
        ge=1,
        description="Mitigated requests for one model that make its exact retrain start at once.",
    )
    exact_due_margin_hours: float = Field(
        168.0,
        ge=0,
        description="An exact retrain starts at the latest this long before its oldest due date.",
    )
    exact_max_wait_hours: float = Field(
        72.0,
        gt=0,
        description="A mitigated request waits at most this long for its exact retrain to start.",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="Where workers train and unlearn: auto (CUDA when present), cpu, cuda, cuda:N.",
    )
    mixed_precision: Literal["off", "bf16"] = Field(
        "off", description="bf16 autocast for training on CUDA; changes results, off by default."
    )
    torch_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="CPU threads each worker process trains with; 0 keeps torch's default (one "
        "per core). Set 1 when several workers share a machine, so they do not contend.",
    )
    hold_accuracy_drop: float = Field(
        0.10,
        ge=0,
        le=1,
        description="A training run whose version's test accuracy is more than this below the "
        "active version's is held for an admin instead of activated (1 never holds); erasure "
        "retrains are activated and flagged instead.",
    )
    orphan_scan_seconds: float = Field(
        600.0, gt=0, description="How often beat deletes stored files that no live row owns."
    )
    reconcile_interval_seconds: float = Field(
        30.0, gt=0, description="How often beat re-enqueues expired jobs and stuck requests."
    )
    replan_after_seconds: float = Field(
        60.0,
        gt=0,
        description="A request still waiting to be planned after this long is planned again "
        "(its planning message was lost, or its worker died while planning).",
    )
    api_threads: int = Field(
        2,
        ge=1,
        le=200,
        description="Threads serving the API's endpoints in each process; scale with processes.",
    )
    host: str = Field("127.0.0.1", description="`lethe serve` bind address.")
    port: int = Field(8000, description="`lethe serve` port.")
    webhook_allowed_networks: str = Field(
        "",
        description="Comma-separated CIDRs that webhook and callback URLs may resolve to even "
        "though they are private, loopback or link-local (e.g. `10.20.0.0/16`).",
    )
    webhook_timeout_seconds: float = Field(
        15.0, gt=0, le=60, description="Timeout of one webhook or callback delivery attempt."
    )
    webhook_sweep_seconds: float = Field(
        30.0, ge=1, description="How often beat sweeps the outbox for due deliveries."
    )
    webhook_signing_key: SecretStr | None = Field(
        None,
        description="Ed25519 key (`whsk_` + base64 of the 32-byte seed) that signs deliveries to "
        "a request's `callback_url`; generated under var_dir when unset.",
    )
    webhook_signing_key_file: Path | None = Field(
        None, description="A file holding `webhook_signing_key` (a container secret)."
    )
    public_base_url: str = Field(
        "",
        description="Where clients reach this API (`https://host` or `https://host/prefix`), for "
        "the absolute URLs it hands out (OpenDSR's `processor_certificate`); never taken from a "
        "request. Empty: `https://<opendsr_processor_domain>`.",
    )
    opendsr_processor_domain: str = Field(
        "localhost",
        description="The domain named in `X-OpenDSR-Processor-Domain`; the certificate's subject.",
    )
    opendsr_key_file: Path | None = Field(
        None, description="PEM private key (RSA or EC) that signs OpenDSR responses and callbacks."
    )
    opendsr_certificate_file: Path | None = Field(
        None,
        description="PEM X.509 certificate for `opendsr_key_file`; both unset: a self-signed "
        "pair is generated under var_dir on first use (development only).",
    )
    dashboard_session_hours: float = Field(
        8.0, gt=0, le=24 * 7, description="A dashboard sign-in ends after this long at the latest."
    )
    dashboard_idle_minutes: float = Field(
        30.0, gt=0, description="A dashboard sign-in ends after this long without a page view."
    )

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            return value
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value

    @property
    def resolved_public_base_url(self) -> str:
        return self.public_base_url or f"https://{self.opendsr_processor_domain}"

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'lethe.db').resolve()}"

    @property
    def broker_dir(self) -> Path:
        return (self.var_dir / "broker").resolve()

    @property
    def resolved_artifact_dir(self) -> Path:
        return (self.artifact_dir or self.var_dir / "artifacts").resolve()

    @property
    def resolved_artifact_cache_dir(self) -> Path:
        return (self.artifact_cache_dir or self.var_dir / "artifact-cache").resolve()

    @property
    def resolved_signing_key_file(self) -> Path:
        return (self.signing_key_file or self.var_dir / "signing-key.pem").resolve()

    def pepper_bytes(self) -> bytes:
        """The identity pepper; the embedded default keeps a generated one under var_dir."""
        if self.identity_pepper is not None:
            return self.identity_pepper.get_secret_value().encode()
        if not self.is_embedded:
            raise RuntimeError("LETHE_IDENTITY_PEPPER must be set when the database is not SQLite")
        path = self.var_dir / "identity-pepper"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
