"""Name → implementation registries, and the checks the spec uses against them.

Samplers, language-similarity sources, evaluation datasets and executors each keep a
:class:`Registry`; the spec names entries, and an unknown name is a spec error that lists
the known ones. Names may take an argument after a colon (``uriel:syntax_knn``): the part
before the colon is what is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from xlrun.errors import SpecError

T = TypeVar("T")


class Registry(Generic[T]):
    """A small name → object table with decorator registration."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj
        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``."""
        self.register(name)(obj)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.split(":", 1)[0] in self._items

    def get(self, name: str, where: str | None = None) -> T:
        """The entry for ``name`` (its part before ``:``); a SpecError lists the known names."""
        self.check(name, where or self.kind)
        return self._items[name.split(":", 1)[0]]

    def check(self, name: str, where: str) -> None:
        """Raise :class:`SpecError` at ``where`` unless ``name`` is registered."""
        if name not in self:
            raise SpecError(where, f"unknown {self.kind}", value=name, allowed=self.names())


def check_sampler(name: str, where: str) -> None:
    """Unknown sampler → SpecError listing the known ones (``none`` means no training)."""
    from xlrun.train.samplers import SAMPLERS

    if name != "none":
        SAMPLERS.check(name, where)


def check_similarity(name: str, where: str) -> None:
    """Unknown language-similarity source (name, argument or weight) → SpecError."""
    from xlrun.langsim.distances import validate_source

    validate_source(name, where)


def check_dataset(name: str, where: str) -> None:
    """Unknown evaluation dataset → SpecError listing the known ones."""
    from xlrun.evaluate.tasks import DATASETS

    DATASETS.check(name, where)
