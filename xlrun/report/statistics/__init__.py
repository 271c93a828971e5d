"""The tests of ``xlrun report --compare`` (registry ``TESTS``; ``--test NAME``), one
module each: ``seed`` (:mod:`.seed`, the default) and ``query`` (:mod:`.query`). A new test
is one new module here (``docs/extending.md``).
"""

from xlrun.registry import import_submodules
from xlrun.report.statistics.base import TESTS, ComparisonTest, register

__all__ = ["TESTS", "ComparisonTest", "register"]

import_submodules(__name__, __path__)
