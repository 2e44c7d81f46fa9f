"""A FastAPI app with taskiq-kit: API, tasks and worker. See ``docs/fastapi.md``."""
