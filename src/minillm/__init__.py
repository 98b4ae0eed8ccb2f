"""minillm: a small, fast LLM gateway and SDK on Trio.

Run the gateway from Python in a Trio app with :func:`open_gateway`, or from
any other app as a background process with :func:`start`.
"""

__version__ = "0.1.0"

from minillm.core.config import Config, ConfigError
from minillm.sdk import (
    GatewayEndpoints,
    GatewayProcess,
    GatewayStartError,
    RunningGateway,
    open_gateway,
    start,
)

__all__ = [
    "Config",
    "ConfigError",
    "GatewayEndpoints",
    "GatewayProcess",
    "GatewayStartError",
    "RunningGateway",
    "__version__",
    "open_gateway",
    "start",
]
