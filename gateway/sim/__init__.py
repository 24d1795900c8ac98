"""Simulated LLM providers (OpenAI, Anthropic, Gemini, Ollama) on real local HTTP servers."""

from gateway.sim.config import (
    SimConfig,
    SimConfigError,
    SimDegradedConfig,
    SimModelConfig,
    SimServerConfig,
    load_sim_config,
    parse_sim_config,
)
from gateway.sim.log import SimLog, SimRecord
from gateway.sim.server import SimCluster, SimServerInfo, default_demo_sim_config, run_sim

__all__ = [
    "SimCluster",
    "SimConfig",
    "SimConfigError",
    "SimDegradedConfig",
    "SimLog",
    "SimModelConfig",
    "SimRecord",
    "SimServerConfig",
    "SimServerInfo",
    "default_demo_sim_config",
    "load_sim_config",
    "parse_sim_config",
    "run_sim",
]
