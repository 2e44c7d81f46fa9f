"""The embedded ``memory://`` broker and backend."""

from taskiq_kit.memory.backend import MemoryResultBackend
from taskiq_kit.memory.broker import MemoryBroker

__all__ = ["MemoryBroker", "MemoryResultBackend"]
