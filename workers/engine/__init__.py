"""The unlearning engine: a plain numpy + PyTorch library (no database, no Celery, no `app`).

Importing this package imports nothing; import the modules you need. `data`, `partition`,
`artifacts`, `checkpoints` and `sisa_model` need numpy only, so the API layer may use them
without torch.

Data (`workers.engine.data`)
    RecordArrays(record_ids, features, labels, subject_ids)   .subset(index) .without(ids) len()
    Dataset(name, input_shape, num_classes, train, holdout, test)
    synthetic_purchase(*, records=20_000, seed=0, ...) -> Dataset   Purchase-100-like, 600 binary
    digits(*, seed=0) -> Dataset                                     8x8 images, shape (1, 8, 8)
    load_file(path, *, name=None, input_shape=None, num_classes=None, seed=0, ...) -> Dataset
    to_tensor_dataset(records) -> torch TensorDataset

Architectures (`workers.engine.architectures`)
    ArchitectureSpec(name, build, learning_rate, epochs, batch_size, weight_decay, version)
    get_architecture(name) -> ArchitectureSpec; list_architectures() -> list[str]
    load_entry_point_architectures(*, entry_points_to_load=None)     group "lethe.architectures"

Training (`workers.engine.training`, `workers.engine.device`)
    train_model(*, spec, data, num_classes, seed, epochs=None, device=None, progress=None,
                init_state=None) -> nn.Module      deterministic on CPU for a given seed
    predict_proba(*, model, features) -> np.ndarray; accuracy(*, model, data) -> float
    pick_device(*, prefer=None) -> torch.device      CUDA when present, else CPU

SISA (`workers.engine.sisa`, `sisa_model`, `partition`, `aggregation`, `unlearning`)
    SisaConfig(shards, slices, seed=0, epochs=None, aggregation="mean", shard_key="record")
    train_sisa(*, spec, data, num_classes, config, checkpoints, device=None, progress=None,
               keep_models=True) -> SisaTrainingReport(model: SisaModel, shards, seconds,
               shard_models)   keep_models=False: one shard's model in memory at a time
    unlearn(*, model, spec, data, erased_record_ids, checkpoints, device=None, progress=None)
        -> UnlearningResult(model, erased_record_ids, affected_slices, shards, superseded_keys,
                            seconds, shard_models)
    verify_exact(*, model, checkpoints, erased_record_ids) -> list[str]   empty means exact
    load_shard_models(*, model, spec, checkpoints, device=None) -> dict[int, nn.Module]
    iter_shard_models(...) -> (shard, model) one at a time, for streaming aggregation
    ensemble_predict_proba(*, models, features, mode="mean"|"vote") -> np.ndarray   streams
    SisaModel.to_dict() / SisaModel.from_dict(document)   a model version's manifest

Checkpoints and artifacts (`workers.engine.checkpoints`, `workers.engine.artifacts`)
    ArtifactStore protocol: put(*, key, data) get(*, key) delete(*, key) list(*, prefix) exists
        purge(*, key) -> versions removed; list_versions(*, prefix); location
    LocalArtifactStore(*, root); CheckpointStore(*, store, prefix="sisa")
    (outside the engine, in `workers.store`: S3ArtifactStore in `s3`, every version purged,
    SHA-256 checked on get; CachedArtifactStore in `cache`, the worker-local read-through cache)
    find_tainted_checkpoints(*, checkpoints, erased_record_ids) -> list[SliceManifest]
    purge_tainted_checkpoints(*, checkpoints, erased_record_ids, delete=True)

Approximate unlearning (`workers.engine.approximate`, see its README.md)
    ApproximatePolicy.from_dict(document) / .to_dict()     no torch: the API validates with it
    run_method(*, name, model, forget, retain, settings=None, progress=None) -> nn.Module
    unlearn_and_verify(*, model, forget, retain, holdout, test, policy, references=None,
                       progress=None) -> ApproximateOutcome

Per-record verification (`workers.engine.verification`)
    GateSettings(references=16, reference_share=0.5, margin=0.25, retained_margin=0.25,
                 confidence=0.9, seed=0)
    build_references(*, spec, data, num_classes, settings, store, prefix, device=None,
                     progress=None, epoch_progress=None) -> list[ReferenceManifest]   per version
    carry_references(*, store, source, target, spec, data, num_classes, settings)
        -> list[ReferenceManifest]       copies the previous version's still-valid references
    load_references(*, store, prefix, spec, device=None) -> ReferenceSet
    verify_forgetting(*, model, forget, holdout, references, settings) -> ForgettingVerdict
    read_manifests / references_holding / purge_references        no torch: for the purge
    stored_references / reference_files                           no torch: what to delete

Language models (`workers.engine.lm`, see its README.md)
    generate_people(*, count, seed) -> list[Person]; facts(person) -> list[Fact]; biography(person)
    build_base_model(*, directory, seed, corpus, ...) -> Path; load_base(*, directory)
    attach_adapter(*, model, settings, seed); train_adapter(*, model, tokenizer, examples, ...)
    AdapterSisa(*, base, tokenizer, config) .train(*, records) .unlearn(*, erased_record_ids)
"""
