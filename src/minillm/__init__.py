"""minillm: a small, fast LLM gateway and SDK on Trio."""

__version__ = "0.1.0"
