"""The dashboard: a web page to watch and steer tasks, mounted in your FastAPI app.

Install with ``pip install taskiq-kit[dashboard]``::

    from fastapi import Depends, FastAPI
    from taskiq_kit.dashboard import dashboard_router
    from taskiq_kit.fastapi import kit_lifespan

    app = FastAPI(lifespan=kit_lifespan(broker))
    app.include_router(
        dashboard_router(broker, scheduler=scheduler, dependencies=[Depends(verify_admin)])
    )

Its data comes only from :mod:`taskiq_kit.inspect`; templates and assets ship in the package.
"""

from taskiq_kit._compat import require

require("fastapi", extra="dashboard", feature="the dashboard")
require("jinja2", extra="dashboard", feature="the dashboard")

from taskiq_kit.dashboard.router import dashboard_router  # noqa: E402

__all__ = ["dashboard_router"]
