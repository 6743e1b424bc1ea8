"""Model agents: parameter specs and learning rules, registered by name."""

from .base import AGENTS, Agent, list_agents, make_agent, register_agent

__all__ = ["AGENTS", "Agent", "list_agents", "make_agent", "register_agent"]
