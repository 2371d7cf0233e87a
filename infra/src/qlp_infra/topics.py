"""Topic provisioning lives in the kit so every service image can run it."""

from qlp_kit.topics import provision

__all__ = ["provision"]
