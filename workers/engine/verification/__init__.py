"""Per-record verification of approximate unlearning against reference models.

See `workers/engine/approximate/README.md` ("The per-record gate") for the statistics. The API:

    GateSettings(references=16, reference_share=0.5, margin=0.25, retained_margin=0.25,
                 confidence=0.90, seed=0)
    build_references(*, spec, data, num_classes, settings, store, prefix, device=None,
                     progress=None, epoch_progress=None) -> list[ReferenceManifest]   per version
    carry_references(*, store, source, target, spec, data, num_classes, settings)
        -> list[ReferenceManifest]       the previous version's still-valid ones, copied
    load_references(*, store, prefix, spec, device=None) -> ReferenceSet
    verify_forgetting(*, model, forget, holdout, references, settings) -> ForgettingVerdict
    read_manifests(*, store, prefix) -> list[ReferenceManifest]      no torch
    references_holding(*, manifests, erased_record_ids) -> list[ReferenceManifest]   no torch
    purge_references(*, store, prefix, erased_record_ids) -> list[str]               no torch
    stored_references(*, store, prefix) -> list[str]   manifest keys, half-written ones too
    reference_files(*, manifest_key) -> list[str]      a reference's blobs, manifest first

`settings` and `manifests` import no torch (the API uses them); `references` and `gate` do.
"""
