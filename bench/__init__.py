"""Benchmarks: each prints a one-line summary and writes JSON + PNG under ``results/``."""
