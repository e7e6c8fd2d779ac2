"""Reports of checked cases: text for people (`text.py`), JSON for machines (`json.py`), JUnit XML
and GitHub annotations for CI (`junit.py`, `github.py`), picked by `formats.py`; colour and progress
on a terminal (`terminal.py`)."""
