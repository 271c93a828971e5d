"""Name → component registries: the one list of the names a spec (or a flag) may use.

Each extension point keeps one :class:`Registry` in the ``base`` module of its package:

==============================  ======================================  ====================
registry                        package (one file per component)        spec field / flag
==============================  ======================================  ====================
``SAMPLERS``                    :mod:`xlrun.train.samplers`             ``sampling.strategy``
``TRAIN_SOURCES``               :mod:`xlrun.data.train_sources`         ``train_data.source``
``DISTANCE_SOURCES``            :mod:`xlrun.langsim.distance_sources`   ``sampling.similarity``
``DATASETS``                    :mod:`xlrun.evaluate.tasks`             ``[[eval]] dataset``
``EXECUTORS``                   :mod:`xlrun.execute.executors`          ``executor.kind``
``TESTS``                       :mod:`xlrun.report.statistics`          ``report --test``
``TRACKERS``                    :mod:`xlrun.tracking`                   ``tracking.report_to``
==============================  ======================================  ====================

A component registers itself when its module is imported, and each package's ``__init__``
imports every module in its folder (:func:`import_submodules`), so adding a component is one
new file in that folder: no list elsewhere names it. The ``base`` module holds the registry
and the component's base class and imports no component, so nothing imports in a circle.

Every component has ``validate(section, key_path)``: the checks of its own section that need
no data, which the spec loader (:mod:`xlrun.spec.load`) calls at submit time. Names may take
an argument after a colon (``uriel:syntax_knn``): the part before the colon is what is
registered.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from xlrun.errors import SpecError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → component table with decorator registration.

    ``kind`` names the components in error messages (``unknown sampler``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated component under ``name``."""
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj
        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``.

        Raises:
            ValueError: the name is taken, or ``obj`` has no ``validate(section, key_path)``.
        """
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if not callable(getattr(obj, "validate", None)):
            raise ValueError(f"{self.kind} {name!r} has no validate(section, key_path) method")
        self._items[name] = obj

    def remove(self, name: str) -> None:
        """Drop ``name`` (tests that register a toy component clean up with this)."""
        del self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, component)`` pairs, sorted by name."""
        return ((name, self._items[name]) for name in self.names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.split(":", 1)[0] in self._items

    def get(self, name: str, where: str | None = None) -> T:
        """The component for ``name`` (its part before ``:``); a SpecError at ``where`` lists
        the known names."""
        self.check(name, where or self.kind)
        return self._items[name.split(":", 1)[0]]

    def check(self, name: str, where: str, also: Iterable[str] = ()) -> None:
        """Raise :class:`SpecError` at ``where`` unless ``name`` is registered (or in
        ``also``, names a field accepts besides the registry's, such as ``none``)."""
        also = list(also)
        if name not in self and name not in also:
            raise SpecError(where, f"unknown {self.kind}", value=name,
                            allowed=[*self.names(), *also])


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__path__``): each registers its components.

    Called at the end of a registry package's ``__init__``; this is what makes a new
    component one new file.
    """
    for info in pkgutil.iter_modules(list(path)):
        importlib.import_module(f"{package}.{info.name}")
