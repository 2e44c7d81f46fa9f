"""Observability: Prometheus metrics and OpenTelemetry traces.

:mod:`taskiq_kit.observability.metrics` needs the ``metrics`` extra and
:mod:`taskiq_kit.observability.tracing` the ``tracing`` extra; import the one you use.
"""
