"""Tests of the inspect API: the task index and the worker registry on every store."""
