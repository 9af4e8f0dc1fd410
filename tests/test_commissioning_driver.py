"""The step driver: an action is a generator of waits, resumed on the clock it is given (pure, no
executor: the clock is a number the test sets)."""

from __future__ import annotations

from concurrent.futures import Future

from energizeos.commissioning.driver import NS, Ask, Await, Driver, Sleep, StepFailed, Until


def run(driver: Driver, until_s: float, tick_s: float = 0.05) -> list[float]:
    """Poll every tick; returns the times at which the driver was polled until it finished."""
    polled, t = [], 0.0
    while t <= until_s + 1e-9:
        polled.append(t)
        if driver.poll(round(t * NS)):
            break
        t += tick_s
    return polled


def test_sleep_until_and_return_value():
    seen: dict = {}
    state = {"ready": False}

    def action():
        yield Sleep(1.0)
        seen["after_sleep"] = True
        state["ready"] = True
        seen["waited"] = yield Until(lambda: state["ready"], 5.0, "ready")
        seen["late"] = yield Until(lambda: False, 0.5, "never", required=False)
        return "done"

    driver = Driver(action())
    polled = run(driver, 10.0)
    assert driver.finished and driver.error == "" and driver.value == "done"
    assert seen == {"after_sleep": True, "waited": 0.0, "late": None}
    assert abs(polled[-1] - 1.5) < 1e-6  # 1 s sleep, then the optional wait timed out after 0.5 s


def test_a_required_wait_that_times_out_fails_the_step_but_the_action_may_catch_it():
    measured = {}

    def action():
        try:
            yield Until(lambda: False, 2.0, "the breaker open")
        except StepFailed as exc:
            measured["why"] = str(exc)
            raise

    driver = Driver(action())
    run(driver, 5.0)
    assert driver.error == "timed out after 2 s waiting for the breaker open"
    assert measured["why"] == driver.error


def test_await_passes_the_result_an_error_or_a_timeout_into_the_action():
    ok, bad, never = Future(), Future(), Future()
    got = []

    def action(future, timeout_s=30.0):
        got.append((yield Await(future, "/ems/breaker/request", timeout_s)))

    ok.set_result("accepted")
    bad.set_exception(RuntimeError("service /ems/breaker/request: no server"))
    first, second, third = Driver(action(ok)), Driver(action(bad)), Driver(action(never, 1.0))
    for d in (first, second, third):
        run(d, 3.0)
    assert got == ["accepted"] and first.error == ""
    assert second.error == "/ems/breaker/request: service /ems/breaker/request: no server"
    assert third.error == "no answer from /ems/breaker/request within 1 s"


def test_an_operator_prompt_waits_for_the_answer_and_needs_an_operator():
    asked, answers = [], []
    pending = Future()

    def ask(prompt: str) -> Future:
        asked.append(prompt)
        return pending

    def action():
        answers.append((yield Ask("Trip the relay by secondary injection")))

    driver = Driver(action(), ask)
    assert not driver.poll(0) and not driver.poll(10 * NS)  # waits as long as the person needs
    pending.set_result(True)
    assert driver.poll(11 * NS) and answers == [True] and asked == ["Trip the relay by secondary injection"]
    alone = Driver(action())
    run(alone, 1.0)
    assert alone.error == "this step needs an operator: Trip the relay by secondary injection"


def test_a_broken_action_fails_its_step_not_the_runner():
    def raises():
        yield Sleep(0.1)
        raise KeyError("ratio")

    def yields_junk():
        yield 42

    def never_waits():
        while True:
            yield Sleep(0.0)

    for action, error in ((raises, "KeyError: 'ratio'"), (yields_junk, "the action yielded int, not a wait"),
                          (never_waits, "the action resumed 10000 times without waiting")):
        driver = Driver(action())
        run(driver, 1.0)
        assert driver.finished and driver.error == error
