"""The ``tracklayer`` command line: the entry point, the shared options and one module
per subcommand (``commands/``).

Commands parse arguments and make one call each into the rest of ``services/``
(servers, clients, offline tracking, evaluation, ops); they hold no logic of their own
and no command module imports another. Nothing outside ``services/cli`` imports it,
except the console script and ``python -m tracklayer.services.cli``.
"""

from tracklayer.services.cli.main import build_parser, main
from tracklayer.services.errors import UserError  # noqa: F401  (former home of UserError)

__all__ = ["build_parser", "main"]
