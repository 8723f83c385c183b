"""Config sync for tier processes: subscribe to control, apply whole, keep last good."""

from common.configsync.agent import ApplyResult, ConfigAgent
from common.configsync.client import ConfigSubscriber, NodeIdentity

__all__ = ["ApplyResult", "ConfigAgent", "ConfigSubscriber", "NodeIdentity"]
