"""``python -m tracklayer.services.cli COMMAND ...``: how supervised children are started."""

import sys

from tracklayer.services.cli.main import main
from tracklayer.services.ops.parent_watch import exit_with_parent

exit_with_parent()  # a supervised child (tracklayer demo) ends with its parent
sys.exit(main())
