"""Thin Prefect wiring: each task reads files, calls one curation function, writes files."""
