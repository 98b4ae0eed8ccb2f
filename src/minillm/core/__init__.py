"""The sans-I/O core: config, errors, policy, provider state, limits, routing, SSE, translators.

Nothing here imports Trio, httpx, Quart or Hypercorn: bytes and values in, values out.
"""
