from symcheck.cli import entry

entry()
