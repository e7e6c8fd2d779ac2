"""Teaching: derivations step by step, checked hand derivations, and pictures (issue 5)."""
