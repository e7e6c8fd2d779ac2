"""The checker: points and sampling (`points.py`), the runner that hands each point to the engines
(`runner.py`), the comparison with its tolerance table (`compare.py`), expectations, claims and the
diagnosis of wrong hand derivations (`diagnose.py`), training runs (`training.py`) and baselines
(`baseline.py`).

It imports suites, engines and the language; never the report or teaching layers above it.
"""
