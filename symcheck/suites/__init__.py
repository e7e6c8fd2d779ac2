"""Suites: the case model the runner gets (`case.py`), the YAML loader that keeps every position
(`positioned_yaml.py`, `loader.py`, validated by `models.py`), training data (`data.py`), from a
case to its programs (`programs.py`), the opt-in to import user code (`imports.py`) and the JSON
Schema for editors (`schema.py`).

Suites sit above the language and the engines (a case names its engines) and below the checker.
"""
