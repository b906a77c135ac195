"""doppel.interrupt: a Ctrl-C that lands in a finalizer is not lost."""
import os
import signal
import threading
import time

import pytest

from doppel import interrupt

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost Ctrl-C itself


class SlowFinalizer:
    def __del__(self):  # Python ignores a KeyboardInterrupt raised in here ("Exception ignored in ...")
        x = 0
        for i in range(2_000):  # Python bytecode, where a pending signal is handled (not inside C code)
            x += i


@pytest.fixture
def installed():
    before = signal.getsignal(signal.SIGINT)
    assert interrupt.install()
    yield
    interrupt.reset()
    signal.signal(signal.SIGINT, before)


def _loop_until_interrupted(check: bool, seconds: float = 2.0) -> str:
    """Spend nearly all the time in finalizers, SIGINT ourselves once; how the loop ended."""
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            SlowFinalizer()
            if check:
                interrupt.check()
    except KeyboardInterrupt:
        return "interrupted"
    return "ran on"


def test_a_lost_ctrl_c_is_raised_again_by_check(installed):
    assert not interrupt.requested()
    ended = _loop_until_interrupted(check=True)
    assert interrupt.requested() and ended == "interrupted"


def test_without_check_the_same_ctrl_c_is_usually_lost(installed):
    # why check() exists: the plain handler's exception dies in __del__ (the loop runs its full time)
    results = []
    for _ in range(3):
        results.append(_loop_until_interrupted(check=False, seconds=0.5))
        interrupt.reset()
    assert "ran on" in results


def test_install_refuses_off_the_main_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(interrupt.install()))
    t.start()
    t.join()
    assert out == [False]


def test_also_handles_sigterm_the_same_way():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert interrupt.install(also=(signal.SIGTERM,))
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(2)  # the handler raises here, at the next bytecode
        assert interrupt.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    finally:
        interrupt.reset()
        for s, h in before.items():
            signal.signal(s, h)
