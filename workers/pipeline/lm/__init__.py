"""Causal language models in the pipeline: registered bases, text records, SISA over adapters."""
