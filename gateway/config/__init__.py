"""Gateway configuration: typed model, YAML loader and validation."""

from gateway.config.check import check_config_main, summarize
from gateway.config.loader import load_config, parse_config
from gateway.config.model import (
    STRATEGIES,
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
    Strategy,
)
from gateway.config.validate import ConfigError, ConfigFileError

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
    "check_config_main",
    "load_config",
    "parse_config",
    "summarize",
]
