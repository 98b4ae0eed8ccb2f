"""The thin Trio/Quart/Hypercorn layer around :mod:`minillm.gateway`."""
