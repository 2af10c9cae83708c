"""Command-line interface: argument parsing and wiring only (see main.py)."""
