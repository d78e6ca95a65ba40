"""Per-record verification of approximate unlearning against reference models.

See `workers/engine/approximate/README.md` ("The per-record gate") for the statistics. The API:

    GateSettings(references=16, reference_share=0.5, margin=0.25, confidence=0.90, seed=0)
    build_references(*, spec, data, num_classes, settings, store, prefix, device=None,
                     progress=None) -> list[ReferenceManifest]      once per model version
    load_references(*, store, prefix, spec, device=None) -> ReferenceSet
    verify_forgetting(*, model, forget, holdout, references, settings) -> ForgettingVerdict
    read_manifests(*, store, prefix) -> list[ReferenceManifest]      no torch
    references_holding(*, manifests, erased_record_ids) -> list[ReferenceManifest]   no torch
    purge_references(*, store, prefix, erased_record_ids) -> list[str]               no torch

`settings` and `manifests` import no torch (the API uses them); `references` and `gate` do.
"""
