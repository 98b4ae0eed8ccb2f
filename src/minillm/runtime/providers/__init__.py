"""Upstream providers: OpenAI-compatible, Anthropic and the offline mock."""
