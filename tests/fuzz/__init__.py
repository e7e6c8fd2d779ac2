"""Fuzz tests: hostile and random inputs through the CLI (generators.py; bench/fuzz.py runs them at scale)."""
