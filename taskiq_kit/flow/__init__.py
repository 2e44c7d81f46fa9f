"""Flow control across every worker: rate limits, concurrency limits, unique and debounced tasks.

Declared as task options (labels), enforced through the broker's result store (Redis,
PostgreSQL, or this process for ``memory://``)::

    from taskiq_kit.flow import Concurrency, Debounce, RateLimit, Unique

    @broker.task(rate_limit="100/m")
    async def call_api() -> None: ...

    @broker.task(rate_limit=RateLimit(10, per=1.0, key=lambda customer_id, **_: customer_id))
    async def charge(customer_id: str, amount: int) -> None: ...

    @broker.task(concurrency=Concurrency(1, key=lambda account, **_: account))
    async def sync_account(account: str) -> None: ...

    @broker.task(unique_for=60)
    async def rebuild_index() -> None: ...

    @broker.task(debounce=Debounce(2.0, key=lambda doc_id, **_: doc_id))
    async def reindex(doc_id: str, text: str) -> None: ...

See ``docs/flow.md``.
"""

from taskiq_kit.flow.policy import Concurrency, Debounce, FlowPolicy, RateLimit, Unique

__all__ = ["Concurrency", "Debounce", "FlowPolicy", "RateLimit", "Unique"]
