"""What the metrics and tracing middlewares cost per task, on ``memory://`` (run by hand).

The same no-op tasks run through the embedded broker, which kicks and runs them in this process,
with the kit's middleware only, then with ``MetricsMiddleware`` (no HTTP server), then with
``TracingMiddleware`` (the OpenTelemetry SDK, spans batched to an exporter that drops them).
The difference in CPU per task is what each middleware adds to a kick plus a run.

How to run::

    .venv/bin/python bench/observability_bench.py --tasks 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from rabbit_bench import taskiq_throughput

from taskiq_kit import make_broker
from taskiq_kit.observability.metrics import MetricsMiddleware
from taskiq_kit.observability.tracing import TracingMiddleware


class DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def cpu_per_task(
    count: int, concurrency: int, variant: str, provider: TracerProvider
) -> float:
    broker = make_broker("memory://")
    if variant == "metrics":
        broker.add_middlewares(MetricsMiddleware(port=None))
    elif variant == "tracing":
        broker.add_middlewares(TracingMiddleware(tracer=provider.get_tracer("bench")))
    run = await taskiq_throughput(broker, count, concurrency, receiver=False)
    return run.cpu_us


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100, help="kicks in flight")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    variants = ("kit only", "metrics", "tracing")
    found: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(args.rounds):
        for variant in variants:
            found[variant].append(
                await cpu_per_task(args.tasks, args.concurrency, variant, provider)
            )
    provider.shutdown()
    base = statistics.median(found["kit only"])
    print(
        f"memory://, {args.tasks} no-op tasks, {args.concurrency} kicks in flight, "
        f"median of {args.rounds} interleaved rounds (CPU of this process per kick + run)"
    )
    for variant in variants:
        value = statistics.median(found[variant])
        print(f"  {variant:10} {value:6.0f} us/task  (+{value - base:4.0f})")


if __name__ == "__main__":
    asyncio.run(main())
