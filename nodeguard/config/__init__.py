"""Configuration: one schema, a loader with positioned errors, and frozen model objects."""

from nodeguard.config.loader import ConfigError, load_config, load_text
from nodeguard.config.model import Config, ContainersConfig, CreateSpec, DockerConfig, Policy

__all__ = [
    "Config",
    "ConfigError",
    "ContainersConfig",
    "CreateSpec",
    "DockerConfig",
    "Policy",
    "load_config",
    "load_text",
]
