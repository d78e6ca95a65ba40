"""Artifact stores beyond the engine's local directory: an S3-compatible bucket (`s3`) and the
worker-local read-through cache in front of it (`cache`). They implement the engine's
`ArtifactStore` protocol (`workers.engine.artifacts`); neither imports torch, the database or
Celery."""
