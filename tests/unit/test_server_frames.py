"""Where servers hand work to the app: WSGI views, Celery task bodies and greenlets."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import greenlet
import pytest
from tag_recorder import TagRecorder

from pyrospan_launch.agent.spans import greenlets, span_profiles, task_frames, wsgi_frames
from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels
from pyrospan_launch.agent.spans.span_markers import PREFIX


def root(span_id: str) -> RootLabels:
    return RootLabels(
        (("span_id", span_id), ("span_name", f"GET /{span_id}")),
        span_id=int(span_id, 16),
        marker_parts=(span_id, f"GET /{span_id}", ""),
    )


A, B = root("00000000000000aa"), root("00000000000000bb")


def marker_on_stack() -> str | None:
    """The span id of the innermost marker frame on the calling stack, if any."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
        if name.startswith(PREFIX):
            return str(name[len(PREFIX) :].split(":")[0])
        frame = frame.f_back
    return None


@pytest.fixture
def switch() -> LabelSwitch:
    tags = TagRecorder()
    return LabelSwitch(tags.add, tags.remove, frames=True)


def test_wsgi_app_and_its_response_run_inside_the_root_span_marker(switch: LabelSwitch) -> None:
    seen: list[str | None] = []

    def app(environ: object, start_response: object) -> Iterator[bytes]:
        seen.append(marker_on_stack())

        def body() -> Iterator[bytes]:
            seen.append(marker_on_stack())
            yield b"chunk"

        return body()

    framed = wsgi_frames.framed_wsgi_app(app, switch)
    token = CURRENT.set(A)
    try:
        response = framed({}, None)
        assert list(response) == [b"chunk"]
    finally:
        CURRENT.reset(token)
    assert seen == ["00000000000000aa", "00000000000000aa"]
    assert list(framed({}, None)) == [b"chunk"]  # outside a root span: called as it is
    assert seen[2:] == [None, None]


def test_flask_views_run_inside_the_request_marker(switch: LabelSwitch) -> None:
    class Flask:
        def dispatch_request(self) -> str | None:
            return marker_on_stack()

    module = types.ModuleType("flask.app")
    module.Flask = Flask  # type: ignore[attr-defined]
    wsgi_frames.patch_flask(module, switch)
    wsgi_frames.patch_flask(module, switch)  # once only
    token = CURRENT.set(B)
    try:
        assert Flask().dispatch_request() == "00000000000000bb"
    finally:
        CURRENT.reset(token)
    assert Flask().dispatch_request() is None


def test_celery_task_body_runs_inside_the_task_marker(switch: LabelSwitch) -> None:
    built: list[object] = []

    def build_tracer(name: str, task: object, *args: object, **kwargs: object) -> object:
        built.append(task.run)  # type: ignore[attr-defined]
        return task.run  # type: ignore[attr-defined]

    module = types.ModuleType("celery.app.trace")
    module.build_tracer = build_tracer  # type: ignore[attr-defined]
    task_frames.patch_celery_tracer(module, switch)
    task = types.SimpleNamespace(run=lambda n: (n, marker_on_stack()))
    run = module.build_tracer("crunch", task)
    token = CURRENT.set(A)
    try:
        assert run(3) == (3, "00000000000000aa")
    finally:
        CURRENT.reset(token)
    assert run(4) == (4, None)


def test_thread_tags_follow_the_greenlet_that_runs() -> None:
    tags = TagRecorder()
    switch = LabelSwitch(tags.add, tags.remove, frames=False)
    tracer = greenlets.GreenletLabels(switch)
    previous = greenlet.settrace(tracer)
    seen: dict[str, list[dict[str, str]]] = {"a": [], "b": []}
    try:
        main = greenlet.getcurrent()

        def work(node: RootLabels, key: str) -> None:
            CURRENT.set(node)
            switch.show(node)  # what the runtime context does when the span starts
            for _ in range(3):
                seen[key].append(tags.current())
                main.switch()

        one = greenlet.greenlet(lambda: work(A, "a"))
        two = greenlet.greenlet(lambda: work(B, "b"))
        for _ in range(4):
            one.switch()
            assert tags.current() == {}  # the main greenlet runs no root span
            two.switch()
    finally:
        greenlet.settrace(previous)
    assert seen["a"] == [dict(A.labels)] * 3
    assert seen["b"] == [dict(B.labels)] * 3


def test_greenlet_patch_chains_the_trace_function_already_set(switch: LabelSwitch) -> None:
    calls: list[str] = []
    previous = greenlet.settrace(lambda event, args: calls.append(event))
    try:
        greenlets.patch_greenlet(greenlet, switch)
        greenlets.patch_greenlet(greenlet, switch)  # once only
        greenlet.greenlet(lambda: None).switch()
    finally:
        greenlet.settrace(previous)
    assert calls == ["switch", "switch"]


def test_a_root_span_started_below_a_framing_entry_is_known_to_be_framed(
    switch: LabelSwitch,
) -> None:
    # below_framing_entry looks two frames up (past the span processor's own caller).
    def start_root() -> bool:
        return span_profiles.below_framing_entry(switch.framing_entries.ids)

    def on_start() -> bool:
        return start_root()

    source = "class Flask:\n    def full_dispatch_request(self):\n        return on_start()\n"
    namespace: dict[str, object] = {"on_start": on_start, "__name__": "flask.app"}
    exec(compile(source, "flask/app.py", "exec"), namespace)
    twin: dict[str, object] = {"on_start": on_start, "__name__": "flask.app"}
    exec(compile(source, "flask/app.py", "exec"), twin)
    flask, twin_flask = namespace["Flask"], twin["Flask"]
    # Equal code objects, made apart: only the one registered is an entry.
    assert flask.full_dispatch_request.__code__ == twin_flask.full_dispatch_request.__code__  # type: ignore[attr-defined]
    flask.dispatch_request = lambda self: None  # type: ignore[attr-defined]
    module = types.ModuleType("flask.app")
    module.Flask = flask  # type: ignore[attr-defined]
    wsgi_frames.patch_flask(module, switch)

    assert len(switch.framing_entries) == 1
    assert flask().full_dispatch_request() is True  # type: ignore[operator]
    assert twin_flask().full_dispatch_request() is False  # type: ignore[operator]
    assert on_start() is False
