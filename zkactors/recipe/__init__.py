"""Coordination recipes on top of the client, with kazoo's names and semantics:
``Lock`` (with a fencing token), ``ReadLock``/``WriteLock``, ``Semaphore``,
``Election``, ``Barrier``/``DoubleBarrier``, ``Counter``, ``Queue``/``LockingQueue``,
``Party``/``ShallowParty``. Reachable as
``client.Lock(...)`` etc. too."""

from zkactors.recipe.barrier import Barrier, DoubleBarrier
from zkactors.recipe.counter import Counter
from zkactors.recipe.election import Election
from zkactors.recipe.lock import CancelledError, Lock, LockTimeout, ReadLock, WriteLock
from zkactors.recipe.party import Party, ShallowParty
from zkactors.recipe.queue import LockingQueue, Queue
from zkactors.recipe.semaphore import Semaphore

__all__ = ["Barrier", "CancelledError", "Counter", "DoubleBarrier", "Election", "Lock",
           "LockTimeout", "LockingQueue", "Party", "Queue", "ReadLock", "Semaphore",
           "ShallowParty", "WriteLock"]
