"""Servers the test harness starts itself, on their own ports and data dirs, for fault tests.

Fault tests (restarting a server, filling its memory, clusters) never touch the shared servers on
the standard ports: a failed test must not leave them broken, and the suite can run beside other
work on the same machine.
"""
