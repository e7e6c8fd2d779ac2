"""The language: grammar and parser, the typed IR, the op catalogue, input specs, source positions.

The bottom layer: it imports nothing else of symcheck's, and everything above may import it.
"""
