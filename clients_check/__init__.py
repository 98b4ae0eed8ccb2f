"""Runs the real agent CLIs through the gateway; see ``__main__``."""
