"""Benchmarks and their recorded results (`bench/RESULTS.md`).

Engine benchmarks are `lethe bench` commands (`sisa`, `approximate`); service benchmarks are
scripts that need the local Postgres and Redis (`python bench/intake.py`, `bench/lineage.py`,
`bench/e2e.py`).
"""
