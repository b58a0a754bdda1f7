"""models.utils.timing: the clock is read only after a device synchronisation, warm-up calls stay out
of the statistics, the median and spread follow from the measured times (a fake clock injects them),
and bad arguments are refused naming the argument. No assertion depends on the machine's speed."""

import doctest

import pytest
import torch

from models.utils import timing
from models.utils.timing import Timing, format_seconds, time_calls


class FakeClock:
    """A perf_counter that only moves when a call says so, with a log of what happened in order."""

    def __init__(self, monkeypatch, synced=True):
        self.now = 0.0
        self.log = []
        monkeypatch.setattr(timing, "perf_counter", self.read)
        if synced:
            monkeypatch.setattr(torch.cuda, "synchronize", self.sync)

    def read(self):
        self.log.append("read")
        return self.now

    def sync(self, device=None):
        self.log.append(("sync", None if device is None else torch.device(device).type))

    def call(self, durations):
        """A fn that takes the next of ``durations`` seconds per call and returns its index."""
        it = iter(enumerate(durations))

        def fn(*args):
            i, d = next(it)
            self.log.append("call")
            self.now += d
            return i

        return fn


def test_doctests_pass():
    assert doctest.testmod(timing).failed == 0


def test_cuda_is_synchronised_before_every_clock_read(monkeypatch):
    clock = FakeClock(monkeypatch)
    time_calls(clock.call([1.0] * 8), device=torch.device("cuda"), repeats=3, warmup=2, number=2)
    reads = [i for i, e in enumerate(clock.log) if e == "read"]
    assert len(reads) == 2 * (2 + 3)  # start and end of each warm-up call and of each sample
    for i in reads:
        assert clock.log[i - 1] == ("sync", "cuda"), clock.log
    assert clock.log.count("call") == 2 + 3 * 2


def test_device_given_as_a_string_is_synchronised(monkeypatch):
    clock = FakeClock(monkeypatch)
    time_calls(clock.call([1.0, 1.0]), device="cuda", repeats=1, warmup=1)
    assert clock.log.count(("sync", "cuda")) == 4


def test_cpu_is_not_synchronised(monkeypatch):
    clock = FakeClock(monkeypatch)
    for device in (None, "cpu", torch.device("cpu")):
        time_calls(clock.call([1.0, 1.0]), device=device, repeats=1, warmup=1)
    assert not [e for e in clock.log if isinstance(e, tuple)]


def test_warmup_calls_are_kept_out_of_the_times(monkeypatch):
    clock = FakeClock(monkeypatch)
    t = time_calls(clock.call([100.0, 200.0, 3.0, 1.0, 2.0]), repeats=3, warmup=2)
    assert t.times == (3.0, 1.0, 2.0)
    assert t.warmup_s == 300.0 and t.n == 3 and t.median == 2.0
    assert t.result == 4  # the value of the last call


def test_no_warmup(monkeypatch):
    clock = FakeClock(monkeypatch)
    t = time_calls(clock.call([5.0, 7.0]), repeats=2, warmup=0)
    assert t.times == (5.0, 7.0) and t.warmup_s == 0.0
    assert clock.log[0] == "read"  # nothing ran before the first timed sample


def test_number_divides_each_sample_by_its_calls(monkeypatch):
    clock = FakeClock(monkeypatch)
    t = time_calls(clock.call([9.0, 1.0, 3.0, 2.0, 6.0]), repeats=2, warmup=1, number=2)
    assert t.times == (2.0, 4.0) and t.number == 2 and t.warmup_s == 9.0


def test_setup_runs_outside_the_timer_and_feeds_fn(monkeypatch):
    clock = FakeClock(monkeypatch)
    made, got = [], []

    def setup():
        clock.now += 1000.0  # an expensive setup: must not show in any time
        made.append(len(made))
        return made[-1]

    def fn(arg):
        got.append(arg)
        clock.now += 2.0
        return arg

    t = time_calls(fn, setup=setup, repeats=2, warmup=1, number=3)
    assert t.times == (2.0, 2.0) and t.warmup_s == 2.0
    assert made == [0, 1, 2] and got == [0, 1, 1, 1, 2, 2, 2]  # one setup per warm-up call and per sample
    assert t.result == 2


@pytest.mark.parametrize(
    ("times", "median", "q1", "q3"),
    [
        ((5.0, 1.0, 4.0, 2.0, 3.0), 3.0, 2.0, 4.0),
        ((4.0, 1.0, 3.0, 2.0), 2.5, 1.75, 3.25),
        ((7.0,), 7.0, 7.0, 7.0),
        ((1.0, 3.0), 2.0, 1.5, 2.5),
    ],
)
def test_median_and_spread_from_injected_times(monkeypatch, times, median, q1, q3):
    clock = FakeClock(monkeypatch)
    t = time_calls(clock.call([0.0, *times]), repeats=len(times), warmup=1)
    assert t.times == times
    assert t.median == pytest.approx(median)
    assert (t.q1, t.q3) == (pytest.approx(q1), pytest.approx(q3))
    assert t.iqr == pytest.approx(q3 - q1)
    assert (t.min, t.max) == (min(times), max(times))
    assert t.n == len(times)


def test_text_shows_median_and_spread_in_one_unit():
    assert str(Timing((0.0012, 0.0010, 0.0011))) == "1.1 ms (IQR 1.05-1.15 ms, n = 3)"
    assert str(Timing((2.0, 4.0, 3.0, 1.0))) == "2.5 s (IQR 1.75-3.25 s, n = 4)"
    assert str(Timing((25e-6,))) == "25 µs (IQR 25-25 µs, n = 1)"
    assert f"{Timing((3e-8,))}" == "30 ns (IQR 30-30 ns, n = 1)"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(0.9996) == "1 s"  # rounded first, never '1e+03 ms'
    assert format_seconds(0.0) == "0 ns"


def test_timing_is_frozen_and_compares_by_times():
    t = Timing([1.0, 2.0], 0.5, 1, result=object())
    assert t.times == (1.0, 2.0)
    with pytest.raises(AttributeError):
        t.times = (3.0,)
    assert t == Timing((1.0, 2.0), 0.5, 1, result="other")  # the result is not compared


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"repeats": 0}, "repeats"),
        ({"repeats": -3}, "repeats"),
        ({"repeats": 2.5}, "repeats"),
        ({"repeats": True}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"warmup": 1.0}, "warmup"),
        ({"number": 0}, "number"),
        ({"device": "tpu"}, "device"),
        ({"device": "meta"}, "device"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs, name):
    calls = []
    with pytest.raises(ValueError, match=f"^{name}:"):
        time_calls(lambda: calls.append(1), **kwargs)
    assert calls == []  # refused before anything ran


@pytest.mark.parametrize(
    ("args", "name"),
    [(((),), "times"), (((-1.0,),), "times"), (((float("nan"),),), "times"), (((1.0,), -1.0), "warmup_s")],
)
def test_bad_timing_fields_are_refused(args, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        Timing(*args)


def test_an_exception_of_fn_propagates(monkeypatch):
    FakeClock(monkeypatch)
    with pytest.raises(ZeroDivisionError):
        time_calls(lambda: 1 / 0, repeats=1, warmup=0)
