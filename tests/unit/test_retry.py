"""zkactors.retry.Retry: kazoo's KazooRetry, with an injected clock and sleep (no sleeping)."""

import random

import pytest

from zkactors import errors
from zkactors.retry import ForceRetryError, InterruptedError, KazooRetry, Retry

pytestmark = pytest.mark.timeout(10)


class FakeTime:
    """A clock that moves only when the retry sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Fails with the given errors in turn, then returns ``result``."""

    def __init__(self, *failures: BaseException, result: object = "ok") -> None:
        self.failures = list(failures)
        self.result = result
        self.calls: list[tuple] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def policy(t: FakeTime, **kwargs) -> Retry:
    kwargs.setdefault("max_jitter", 0.0)
    return Retry(sleep_func=t.sleep, clock=t.clock, **kwargs)


def test_a_success_returns_at_once_with_the_arguments_passed_through():
    t = FakeTime()
    func = Flaky(result=42)
    assert policy(t)(func, 1, 2, key="v") == 42
    assert func.calls == [((1, 2), {"key": "v"})] and t.sleeps == []


@pytest.mark.parametrize("error", [errors.ConnectionLoss("x"), errors.OperationTimeoutError("x"),
                                   errors.SessionExpiredError("x"), ForceRetryError()])
def test_retryable_errors_are_retried_with_exponential_backoff(error):
    t = FakeTime()
    func = Flaky(error, error, error)
    assert policy(t, max_tries=5, delay=0.1, backoff=2)(func) == "ok"
    assert len(func.calls) == 4
    assert t.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_max_tries_counts_retries_after_the_first_attempt_then_fails_with_the_cause():
    t = FakeTime()
    last = errors.ConnectionLoss("third")
    func = Flaky(errors.ConnectionLoss("1"), errors.ConnectionLoss("2"), last)
    retry = policy(t, max_tries=2)
    with pytest.raises(errors.RetryFailedError, match="too many retry attempts") as info:
        retry(func)
    assert len(func.calls) == 3 and len(t.sleeps) == 2
    assert info.value.__cause__ is last and retry.attempts == 2


def test_max_tries_zero_never_retries_and_minus_one_never_gives_up():
    t = FakeTime()
    with pytest.raises(errors.RetryFailedError):
        policy(t, max_tries=0)(Flaky(errors.ConnectionLoss()))
    assert t.sleeps == []
    func = Flaky(*[errors.OperationTimeoutError()] * 60)
    assert policy(t, max_tries=-1, max_delay=1.0)(func) == "ok"
    assert len(func.calls) == 61
    assert policy(t, max_tries=None)(Flaky(errors.ConnectionLoss())) == "ok"


def test_pauses_are_capped_by_max_delay():
    t = FakeTime()
    func = Flaky(*[errors.ConnectionLoss()] * 5)
    policy(t, max_tries=10, delay=1.0, backoff=2, max_delay=5.0)(func)
    assert t.sleeps == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0])


def test_jitter_scales_each_pause_within_its_bounds():
    t = FakeTime()
    func = Flaky(*[errors.ConnectionLoss()] * 30)
    retry = Retry(max_tries=-1, delay=1.0, backoff=1, max_jitter=0.25, sleep_func=t.sleep,
                  clock=t.clock, rng=random.Random(7))
    retry(func)
    assert all(0.75 <= s <= 1.25 for s in t.sleeps)
    assert len(set(t.sleeps)) > 20  # really random, not a constant
    assert Retry(max_jitter=3.0).max_jitter == 1.0 and Retry(max_jitter=-1).max_jitter == 0.0


def test_other_errors_and_a_closed_client_are_raised_as_they_are():
    t = FakeTime()
    for error in (errors.NoNodeError("x"), errors.ConnectionClosedError("stopped"),
                  errors.NotLeaderError(), ValueError("bug")):
        func = Flaky(error)
        with pytest.raises(type(error)) as info:
            policy(t, max_tries=5)(func)
        assert info.value is error and len(func.calls) == 1
    assert t.sleeps == []


def test_session_expiry_is_not_retried_with_ignore_expire_false():
    t = FakeTime()
    func = Flaky(errors.SessionExpiredError("gone"))
    with pytest.raises(errors.SessionExpiredError):
        policy(t, max_tries=5, ignore_expire=False)(func)
    assert len(func.calls) == 1
    # Still retries the rest.
    assert policy(t, max_tries=5, ignore_expire=False)(Flaky(errors.ConnectionLoss())) == "ok"


def test_the_deadline_stops_before_a_pause_that_would_cross_it():
    t = FakeTime()
    func = Flaky(*[errors.ConnectionLoss()] * 100)
    retry = policy(t, max_tries=-1, delay=0.3, backoff=1, deadline=1.0)
    with pytest.raises(errors.RetryFailedError, match="deadline"):
        retry(func)
    # Pauses at 0.3, 0.6, 0.9 from the start; the next would end at 1.2 >= 1.0.
    assert t.sleeps == pytest.approx([0.3, 0.3, 0.3]) and len(func.calls) == 4


def test_the_deadline_is_counted_from_each_call():
    t = FakeTime()
    retry = policy(t, max_tries=-1, delay=0.3, backoff=1, deadline=1.0)
    assert retry(Flaky(*[errors.ConnectionLoss()] * 3)) == "ok"
    t.now += 50  # long after: a new call has a whole new deadline
    assert retry(Flaky(*[errors.ConnectionLoss()] * 3)) == "ok"


def test_interrupt_is_asked_every_tenth_of_a_second_and_ends_the_retry():
    t = FakeTime()
    asked: list[float] = []

    def interrupt() -> bool:
        asked.append(t.now)
        return len(asked) == 7

    retry = policy(t, max_tries=-1, delay=0.25, backoff=2, interrupt=interrupt)
    with pytest.raises(InterruptedError) as info:
        retry(Flaky(*[errors.ConnectionLoss()] * 10))
    assert isinstance(info.value, errors.RetryFailedError)
    assert all(s <= 0.1 + 1e-9 for s in t.sleeps)
    # 0.25 s -> 0.1, 0.1, 0.05; then 0.5 s -> 0.1 x 4 of which the 4th is interrupted.
    assert t.sleeps == pytest.approx([0.1, 0.1, 0.05, 0.1, 0.1, 0.1, 0.1])


def test_each_call_starts_over_from_the_first_delay():
    t = FakeTime()
    retry = policy(t, max_tries=5, delay=0.1, backoff=2)
    retry(Flaky(errors.ConnectionLoss(), errors.ConnectionLoss()))
    retry(Flaky(errors.ConnectionLoss()))
    assert t.sleeps == pytest.approx([0.1, 0.2, 0.1])
    assert retry.attempts == 1
    retry.reset()
    assert retry.attempts == 0


def test_copy_has_the_same_settings_and_is_independent():
    t = FakeTime()
    original = policy(t, max_tries=3, delay=0.5, backoff=3, max_delay=7.0, ignore_expire=False,
                      deadline=9.0)
    original.retry_exceptions += (KeyError,)
    clone = original.copy()
    assert clone is not original and isinstance(clone, KazooRetry)
    for name in ("max_tries", "delay", "backoff", "max_jitter", "max_delay", "ignore_expire",
                 "sleep_func", "deadline", "interrupt", "clock", "retry_exceptions"):
        assert getattr(clone, name) == getattr(original, name), name
    assert clone(Flaky(KeyError("k"), errors.ConnectionLoss())) == "ok"
    assert clone.attempts == 2 and original.attempts == 0
    with pytest.raises(errors.SessionExpiredError):
        clone(Flaky(errors.SessionExpiredError()))


@pytest.mark.parametrize("kwargs", [{"max_tries": -2}, {"max_tries": 1.5}, {"delay": -1},
                                    {"deadline": -1}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Retry(**kwargs)


def test_a_clients_command_retry_is_a_policy_or_its_arguments():
    from zkactors.client import Client

    assert Client("127.0.0.1:2181")._retry.max_tries == -1  # kazoo's: no limit
    configured = Client("127.0.0.1:2181", command_retry={"max_tries": 2, "delay": 0.5})._retry
    assert (configured.max_tries, configured.delay) == (2, 0.5)
    mine = Retry(max_tries=7)
    assert Client("127.0.0.1:2181", command_retry=mine)._retry is mine
