"""Erasure for causal language models: fictitious people, a small base model Lethe trains
itself, LoRA fine-tuning, scoring, and SISA over per-shard adapters (see README.md)."""
