"""Provider adapter details: proxies from the environment, unsupported operations."""

from __future__ import annotations

import pytest

from minillm.runtime.providers.http import proxy_for


def test_proxy_from_environment_unless_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert proxy_for("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.svc")
    assert proxy_for("https://api.openai.com/v1") == "http://proxy.internal:3128"
    assert proxy_for("http://127.0.0.1:11434/v1") is None
    assert proxy_for("http://vllm.svc:8000/v1") is None
    assert proxy_for("http://plain-http.example/v1") is None  # only HTTPS_PROXY is set
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY")
    assert proxy_for("http://localhost:8000/v1") is None  # loopback is never proxied
    assert proxy_for("http://[::1]:8000/v1") is None
    assert proxy_for("http://plain-http.example/v1") == "http://proxy.internal:3128"
