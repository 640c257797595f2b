"""``Counter``: kazoo's shared counter — a number in a znode, changed by
compare-and-set (``set`` with the version read), so concurrent changes are
never lost: a change that lost the race reads again and retries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from zkactors.errors import BadVersionError, NodeExistsError

if TYPE_CHECKING:
    from zkactors.client.api import Client

#: Attempts at most per change (each failed one saw another change land first).
MAX_ATTEMPTS = 10_000


class Counter:
    """``counter += 1`` / ``counter -= 2``; ``counter.value``. After a change,
    ``pre_value`` and ``post_value`` say what it went from and to."""

    def __init__(self, client: Client, path: str, default: float = 0) -> None:
        self.client = client
        self.path = path
        self.default = default
        self.default_type = type(default)
        self.pre_value: Any = None
        self.post_value: Any = None
        self._made = False

    def _read(self) -> tuple[Any, int]:
        if not self._made:
            try:
                self.client.create(self.path, repr(self.default).encode(), makepath=True)
            except NodeExistsError:
                pass
            self._made = True
        data, stat = self.client.get(self.path)
        return (self.default_type(data.decode()) if data else self.default), stat.version

    @property
    def value(self) -> Any:
        return self._read()[0]

    def _change(self, delta: float) -> Self:
        if not isinstance(delta, (int, float)) or isinstance(delta, bool):
            raise TypeError(f"a counter changes by a number, not {delta!r}")
        for _ in range(MAX_ATTEMPTS):
            value, version = self._read()
            new = value + delta
            try:
                self.client.set(self.path, repr(new).encode(), version=version)
            except BadVersionError:
                continue  # another change landed first: read it and try again
            self.pre_value, self.post_value = value, new
            return self
        raise RuntimeError(f"counter {self.path}: {MAX_ATTEMPTS} changes lost the race")

    def __add__(self, delta: float) -> Self:
        return self._change(delta)

    def __sub__(self, delta: float) -> Self:
        return self._change(-delta)
