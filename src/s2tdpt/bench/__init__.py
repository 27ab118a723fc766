"""Benchmarks that ship with the package (``s2tdpt bench ...``); results and commands in BENCHMARKS.md."""
