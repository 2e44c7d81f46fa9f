"""The ``taskiq-kit`` console script: tasks, queues, workers, dead letters and schedules.

Every command reads and changes the app through the public API (``get_task_record``,
``abort_task``, :mod:`taskiq_kit.inspect`, :mod:`taskiq_kit.inspect.schedules`).
"""

from taskiq_kit._compat import require

require("click", extra="cli", feature="the taskiq-kit command")
require("rich", extra="cli", feature="the taskiq-kit command")

# The extras are checked first, so a missing one says what to install.
from taskiq_kit.cli import dead_letters, queues, schedules, tasks  # noqa: E402
from taskiq_kit.cli.app import cli, main  # noqa: E402
from taskiq_kit.cli.exit_codes import ExitCode  # noqa: E402

__all__ = ["ExitCode", "cli", "dead_letters", "main", "queues", "schedules", "tasks"]
