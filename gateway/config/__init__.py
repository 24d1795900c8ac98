"""Gateway configuration: typed model, YAML loader and validation."""

from gateway.config.loader import load_config, parse_config
from gateway.config.model import (
    AdminConfig,
    AuthConfig,
    Config,
    CorsConfig,
    DeploymentConfig,
    GovernanceConfig,
    LatencyConfig,
    LimitsConfig,
    ListenConfig,
    LoggingConfig,
    PrewarmConfig,
    PriceConfig,
    PriorConfig,
    ProviderConfig,
    RouteConfig,
    Secret,
    StateConfig,
)
from gateway.config.summary import summarize
from gateway.config.validate import ConfigError, ConfigFileError
from gateway.strategy import STRATEGIES, Strategy

__all__ = [
    "STRATEGIES",
    "AdminConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "ConfigFileError",
    "CorsConfig",
    "DeploymentConfig",
    "GovernanceConfig",
    "LatencyConfig",
    "LimitsConfig",
    "ListenConfig",
    "LoggingConfig",
    "PrewarmConfig",
    "PriceConfig",
    "PriorConfig",
    "ProviderConfig",
    "RouteConfig",
    "Secret",
    "StateConfig",
    "Strategy",
    "load_config",
    "parse_config",
    "summarize",
]
