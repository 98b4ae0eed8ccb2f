"""The Quart-Trio endpoint layer around :mod:`minillm.runtime`: app, admission and records,
the relay, serving and workers."""
