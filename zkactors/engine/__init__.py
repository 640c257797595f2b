"""The engine: the layer between the pure cores and the runtime.

A core says *what* to do (a :class:`~zkactors.core.replog.Ready`); the order in
which that is carried out — persist and fsync before the acknowledgement that
depends on it, hand entries to the store in log order, a snapshot before the
entries after it — is protocol too. It lives here, once, behind small storage
interfaces (:mod:`zkactors.engine.storage`) with real files
(:mod:`zkactors.storage`) and in-memory twins (:mod:`zkactors.engine.memory`).
The log actor (:mod:`zkactors.runtime.log`) and the simulator
(:mod:`zkactors.sim`) both run :class:`~zkactors.engine.replica.Replica`, so the
simulator proves the driver that ships.

No sockets, no threads, no clock here: time comes in as arguments, and the
outside world is reached through :class:`~zkactors.engine.replica.Outputs`.
"""
