"""The handoff patches: tasks and pool work show their root span's labels, nothing else."""

from __future__ import annotations

import asyncio
import concurrent.futures.thread
import contextlib
import contextvars
import threading
import types
from collections.abc import Generator
from types import SimpleNamespace

import pytest
from tag_recorder import TagRecorder

from pyrospan_launch.agent.spans import handoff, task_steps
from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels

ROOT = RootLabels((("span_id", "00000000000000aa"), ("span_name", "GET /")), span_id=0xAA)


@pytest.fixture
def switch() -> tuple[LabelSwitch, TagRecorder]:
    recorder = TagRecorder()
    return LabelSwitch(recorder.add, recorder.remove), recorder


def test_pool_work_runs_with_the_submitters_root_span(
    switch: tuple[LabelSwitch, TagRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, recorder = switch

    Pool = concurrent.futures.ThreadPoolExecutor
    thread_module = concurrent.futures.thread
    # The real module's work item, put back after the test.
    monkeypatch.setattr(thread_module, "_WorkItem", thread_module._WorkItem)
    handoff._patch_thread_pool(thread_module, labels)
    token = CURRENT.set(ROOT)
    try:
        with Pool(1) as pool:
            inside = pool.submit(recorder.current).result()
            unlabelled_outside = recorder.current()
    finally:
        CURRENT.reset(token)
    assert inside == dict(ROOT.labels)
    assert unlabelled_outside == {}  # the submitting thread's labels are the context's job
    with Pool(1) as pool:
        assert pool.submit(recorder.current).result() == {}  # no root span: no labels


def test_each_task_step_shows_its_tasks_root_span(
    switch: tuple[LabelSwitch, TagRecorder],
) -> None:
    labels, recorder = switch
    seen: list[dict[str, str]] = []

    async def step_twice() -> None:
        seen.append(recorder.current())
        await asyncio.sleep(0)
        seen.append(recorder.current())

    async def main() -> None:
        token = CURRENT.set(ROOT)
        try:
            coro = task_steps.LabelledCoroutine(step_twice(), labels)
            task = asyncio.ensure_future(coro)
        finally:
            CURRENT.reset(token)
        await task
        seen.append(recorder.current())  # the loop's own thread between steps

    asyncio.run(main())
    assert seen == [dict(ROOT.labels), dict(ROOT.labels), {}]


def test_a_coroutine_stepped_on_two_threads_labels_the_thread_of_each_step(
    switch: tuple[LabelSwitch, TagRecorder],
) -> None:
    """An event loop may run on one thread, stop, and run again on another."""
    labels, recorder = switch
    seen: list[tuple[int, dict[str, str]]] = []

    @types.coroutine
    def pause() -> Generator[None, None, None]:
        yield

    async def body() -> None:
        seen.append((threading.get_ident(), recorder.current()))
        await pause()
        seen.append((threading.get_ident(), recorder.current()))

    coro = task_steps.LabelledCoroutine(body(), labels)
    context = contextvars.copy_context()
    context.run(CURRENT.set, ROOT)
    after: list[tuple[int, dict[str, str]]] = []

    over = threading.Event()

    def step(stepped: threading.Event) -> None:
        with contextlib.suppress(StopIteration):
            context.run(coro.send, None)
        after.append((threading.get_ident(), recorder.current()))
        stepped.set()
        over.wait(5)  # alive till the end: two threads, two idents

    threads = []
    for _ in range(2):
        stepped = threading.Event()
        threads.append(threading.Thread(target=step, args=(stepped,)))
        threads[-1].start()
        stepped.wait(5)
    over.set()
    for thread in threads:
        thread.join()
    first, second = (ident for ident, _ in seen)
    assert first != second
    assert [tags for _, tags in seen] == [dict(ROOT.labels), dict(ROOT.labels)]
    assert after == [(first, {}), (second, {})]  # each thread shows nothing once its step is over


def test_a_failing_patch_is_one_line_and_the_import_goes_on(
    switch: tuple[LabelSwitch, TagRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    labels, _ = switch

    def broken(module: object, switch: LabelSwitch) -> None:
        raise RuntimeError("no Task here")

    hook = handoff.guarded(broken, labels)
    hook(SimpleNamespace(__name__="asyncio"))  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err == "pyrospan: span labels for asyncio unavailable: RuntimeError: no Task here\n"
