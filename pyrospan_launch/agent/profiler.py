"""Run the Pyroscope profiler (pyroscope-io) from a validated configuration: :class:`Profiler`."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

from pyrospan_launch.agent.app_profiler import ConfigureHandover
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.agent.main_signals import blocked_for_new_threads
from pyrospan_launch.agent.native_exit import NativeExitGuard
from pyrospan_launch.agent.relay.server import TOKEN_HEADER, Relay
from pyrospan_launch.agent.spans.labels import LabelSwitch
from pyrospan_launch.agent.tag_gate import TagGate
from pyrospan_launch.common import log
from pyrospan_launch.settings.config import ProfilerConfig
from pyrospan_launch.settings.sampling import CPU_TIMERS, Sampling

# typing for type checkers only: importing it costs every process milliseconds at start-up
# (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrospan_launch.agent.app_tags import AppTags


# Seconds of the exit deadline left for the one summary line after the relay's last pushes.
_EXIT_SUMMARY = 0.1
# Seconds the last profile's flush may run on, past the exit deadline, before uWSGI's
# exit() goes on to destroy pyroscope-io's native module (Profiler._flush_before_native_exit).
_NATIVE_EXIT_GRACE = 5.0
_LAST_WINDOW = "profiles"  # the exit call that sends the last profile window
# Seconds the app waits for the move from the Stack sampler to py-spy.
_SWITCH_WAIT = 0.5
# Marker code objects kept alive under the Stack sampler (span_markers.KeptCodes).
_KEPT_MARKERS = 4096
# Frames the Stack sampler reads from each stack, leaf first.
_STACK_FRAMES = 256
# The share of the process's CPU the Stack sampler's loop aims its own at (adaptive
# sampling).  With CPU timers (3.12+) the timers take the samples, and at pyroscope-io's
# 0.01 the loop still wakes 500 to 750 times a second, even at 1 Hz; on a shared core each
# wake-up preempts the app.  At 0.003 it wakes about 220 times a second (measured, 3.13:
# its threads' CPU 0.88% -> 0.25% beside a CPU-bound thread; about 1% less app-thread
# CPU a request in-process; CPU in the profiles and span labels unchanged).  Before 3.12
# the loop is the sampler itself, so a lower target would mean fewer samples.
_TIMERS_LOOP_TARGET = 0.003
_WALL_LOOP_TARGET = 0.01


class ProfilerError(RuntimeError):
    """pyroscope-io refused to start."""


def _configure(config: ProfilerConfig, relay: Relay | None = None, *, stack: bool = False) -> None:
    import pyroscope

    from pyrospan_launch.agent import relay as relays

    server_address = config.server_address
    http_headers = dict(config.http_headers)
    if relay is not None:
        # pyroscope-io pushes to this process's relay, which forwards to the server.
        server_address = relay.address
        http_headers[TOKEN_HEADER] = relay.token
    # The members of the native module loaded now: a forked child may run its own copy
    # (agent/native_copy), whose enums refuse the first module's.
    native = pyroscope._native
    implementation = native.ProfilerImplementation
    if stack:
        _tune_stack_sampler(native, config.sample_rate)
    # pyroscope-io's native threads inherit the mask: the app's signals reach its threads.
    with relays.direct(relay), blocked_for_new_threads():
        started = pyroscope.configure(
            application_name=config.application_name,
            server_address=server_address,
            basic_auth_username=config.basic_auth_user,
            basic_auth_password=config.basic_auth_password,
            sample_rate=config.sample_rate,
            oncpu=config.oncpu,
            # Wall-clock span profiles must see threads that wait with the GIL released
            # (I/O, sleep); pyroscope-io samples only the GIL holder unless told otherwise.
            gil_only=config.oncpu,
            tags=dict(config.tags),
            tenant_id=config.tenant_id,
            http_headers=http_headers,
            upload_interval=config.upload_interval,
            mem_enabled=config.profile_memory,
            # A `pid` label on every sample, the process's own (workers of a prefork server
            # apart); it matches the `process.pid` resource attribute of its spans.
            report_pid=True,
            line_no=native.LineNo.LastInstruction,
            cpu_implementation=implementation.Stack if stack else implementation.PySpy,
        )
    if started is False:
        raise ProfilerError("pyroscope.configure() returned False")


def _tune_stack_sampler(native: Any, sample_rate: int) -> None:
    """The Stack sampler's options, before it starts (only the first call counts).

    * ``max_threads=0``: every thread in every cycle.  Past its default cap of 25 the
      sampler picks threads at random, and a span on a thread left out loses samples
      without a word.
    * ``max_nframe``: deep enough for the marker frame near the root of a 100-frame
      stack under a framework (a cut stack loses the marker and its label).
    * ``cpu_timer_interval_ms`` from ``PYROSCOPE_SAMPLE_RATE``: the Stack sampler ignores
      ``configure()``'s sample rate and ticks every 10 ms unless told (measured: at
      10 Hz asked, its samples still weighed 4 to 10 ms each).
    * ``adaptive_target_overhead``: see :data:`_TIMERS_LOOP_TARGET`.
    """
    interval_ms = max(1, round(1000 / max(1, sample_rate)))
    target = _TIMERS_LOOP_TARGET if sys.version_info >= CPU_TIMERS else _WALL_LOOP_TARGET
    native.configure_experimental_stack_profiler(
        _STACK_FRAMES, 0, True, target, 100000, 0.0, 600, 95.0, True, interval_ms
    )


def _move_wait(sample_rate: int) -> float:
    """Seconds the app's tag calls wait for a move to py-spy (tag_gate).

    Stopping the Stack sampler waits for its loop's next turn.  Before 3.12 the loop is the
    sampler and turns at the sample rate: at 1 Hz the stop took 550 to 600 ms, past the
    usual wait (measured, 3.11).  With CPU timers it took 11 to 16 ms at any rate.
    """
    if sys.version_info >= CPU_TIMERS:
        return _SWITCH_WAIT
    return max(_SWITCH_WAIT, 1.5 / max(1, sample_rate))


def _reads_whole_stacks(sampling: Sampling) -> bool:
    """True when each stack is read in its thread's own CPU-timer signal, never cut short."""
    return sampling.stack and sys.version_info >= CPU_TIMERS


def _uwsgi_threads_against_stack() -> str | None:
    """Why the Stack sampler cannot sample this uWSGI worker's requests, or None.

    uWSGI's request threads (``--threads``: ``uwsgi.cores`` > 1) block every signal, the
    CPU timers' too (3.12+): none of their samples would come (measured: no span linked).
    Before 3.12 the Stack sampler's wall-clock loop needs no signal.
    """
    if sys.version_info < CPU_TIMERS:
        return None
    cores = getattr(sys.modules.get("uwsgi"), "cores", 1)
    if not isinstance(cores, int) or cores <= 1:
        return None
    return f"uWSGI's {cores} request threads per worker block the Stack sampler's CPU-timer signal"


def installed() -> bool:
    """True when pyroscope-io can be imported (not so where it has no wheel: README)."""
    try:
        import pyroscope  # noqa: F401
    except ImportError as exc:
        from pyrospan_launch.common import profiler_support

        # Another module missing inside pyroscope-io: start() fails on it, reported then.
        return not profiler_support.is_missing(exc)
    return True


def _no_tag(key: str, value: str) -> None:
    """Stands for pyroscope-io's thread-tag calls where it is not installed."""


def links_only() -> LabelSwitch:
    """The label switch for a process without pyroscope-io: spans linked, nothing labelled."""
    return LabelSwitch(_no_tag, _no_tag)


def _tag_functions(pyroscope: Any) -> tuple[Any, Any]:
    """The thread-tag functions, native ones when present.

    ``pyroscope.add_thread_tag`` only forwards to its native module; calling that
    directly halves the cost of a label switch, which every root span pays four times.
    """
    native = getattr(pyroscope, "_native", None)
    add = getattr(native, "add_thread_tag", None)
    remove = getattr(native, "remove_thread_tag", None)
    if callable(add) and callable(remove):
        return add, remove
    return pyroscope.add_thread_tag, pyroscope.remove_thread_tag


class Profiler:
    """pyroscope-io in this process: its relay, its label switch, and which sampler runs.

    ``sampling`` is the choice made with the configuration (settings/sampling);
    ``on_sampling`` is told each time it changes (the agent holds it).  It changes only
    towards py-spy: when the relay cannot run marker frames, when a forked child cannot
    start the Stack sampler, or when ``auto`` meets something the Stack sampler cannot
    label (:meth:`move_to_pyspy`).
    """

    def __init__(
        self,
        config: ProfilerConfig,
        sampling: Sampling,
        lifecycle: Lifecycle,
        *,
        spans_follow: Callable[[str], str] | None = None,
        on_relay: Callable[[Relay], None] | None = None,
        on_sampling: Callable[[Sampling], None] | None = None,
    ) -> None:
        self.config = config
        self.sampling = sampling
        self._lifecycle = lifecycle
        self._spans_follow = spans_follow
        self._on_relay = on_relay
        self._on_sampling = on_sampling
        self.relay: Relay | None = None
        self.labels: LabelSwitch | None = None
        self.app_tags: AppTags | None = None
        self._handover: ConfigureHandover | None = None
        self._native_path = ""
        self._switch_lock = threading.Lock()
        self._warned: set[str] = set()
        # True once the app's own configure() runs the profiler (ConfigureHandover).
        self._app_owns = False
        # The Stack sampler's thread registration, and the native threads it was given.
        self._register_thread: Callable[[int, int], object] | None = None
        self._seen_threads: set[int] = set()
        self._exit_guard: NativeExitGuard | None = None
        # Whether a root span started in this process yet (reset in a forked child).
        self._serving = False

    # --- start ---------------------------------------------------------------------

    def start(self, app_tag_room: int | None = None) -> LabelSwitch:
        """Configure pyroscope-io and return the handle that labels threads' samples.

        pyroscope-io pushes to this process's relay, which forwards to the server and says
        when a push is not delivered (pushing directly, pyroscope-io reports nothing
        readable).  With marker frames the relay also turns root spans' marker frames into
        sample labels; with thread tags it passes pushes on as they came.  Without a relay
        (it could not start) pyroscope-io pushes directly, span labels are thread tags and
        py-spy samples.  Forked children start their own relay and profiler
        (:meth:`restart_in_child`).  The last window is sent at exit, within the
        lifecycle's exit deadline.  ``app_tag_room`` fits the app's own thread tags
        (agent/app_tags) when given.
        """
        import pyroscope

        from pyrospan_launch.agent import native_copy
        from pyrospan_launch.agent import relay as relays

        relay = relays.start(self.config.server_address, frames=self.sampling.frames)
        self.relay = relay
        if relay is not None and self._on_relay is not None:
            self._on_relay(relay)
        if relay is None and self.sampling.frames:
            self._change(self.sampling.with_tags("the profile relay could not start"))
        self._native_path = native_copy.original_path()
        self._configure_or_fall_back(relay)
        if relay is not None and self.sampling.stack:
            relay.label_pid = True  # the Stack sampler labels no sample with its pid
        if self.sampling.stack:
            from pyrospan_launch.agent.spans.span_markers import KEPT
            from pyrospan_launch.agent.stack_guard import StackGuard

            KEPT.start(_KEPT_MARKERS)
            StackGuard(self._signal_taken, lambda: self.sampling.stack).install()
        labels = LabelSwitch(*_tag_functions(pyroscope), frames=self.sampling.frames)
        labels.tags_read = not self.sampling.stack
        labels.set_whole_stacks(_reads_whole_stacks(self.sampling))
        self.labels = labels
        if relay is not None:
            # Loaded when span linking starts, not on the relay's threads (Relay.warm_up).
            labels.warm_up = relay.warm_up if labels.frames else relay.load_forwarding
        if app_tag_room is not None:
            from pyrospan_launch.agent import app_tags

            self.app_tags = app_tags.install(app_tag_room, self.app_tagged)
        self._handover = ConfigureHandover(labels, relay, self._spans_follow)
        self._handover.on_handed_over = self._app_configured
        self._lifecycle.after_fork_in_child(self.restart_in_child)
        self._handover.install()
        # Sends the last profile window; pyroscope-io's own exit handler has no deadline.
        self._lifecycle.on_exit(_LAST_WINDOW, self.send_last_window)
        self._guard_uwsgi_exit()  # a uWSGI master ends through exit() and never finalizes
        config = self.config
        how = f"through the relay at {relay.address}" if relay is not None else "directly"
        log.debug(
            f"profiler started: application {config.application_name!r}, "
            f"{config.sample_rate} Hz, upload every {config.upload_interval}s "
            f"to {config.server_address} {how}; sampler {self.sampling.describe()}; span labels "
            f"{'from marker frames' if labels.frames else 'from thread tags'}"
        )
        return labels

    def _change(self, sampling: Sampling) -> None:
        self.sampling = sampling
        if self.labels is not None:
            self.labels.frames = sampling.frames
            self.labels.tags_read = not sampling.stack
            self.labels.set_whole_stacks(_reads_whole_stacks(sampling))
        if self._on_sampling is not None:
            self._on_sampling(sampling)

    def _configure_or_fall_back(self, relay: Relay | None) -> None:
        """Start the chosen sampler; when Stack is refused, py-spy with one line."""
        if self.sampling.stack:
            self._catch_thread_registry()
        try:
            _configure(self.config, relay, stack=self.sampling.stack)
        except Exception as exc:
            # Its options are experimental in pyroscope-io: a release that changes them
            # costs the Stack sampler, not the profile.
            if not self.sampling.stack:
                raise
            reason = f"the Stack sampler did not start ({type(exc).__name__}: {exc})"
            self._change(self.sampling.on_pyspy(reason))
            log.warning(f"profiles: {reason}; py-spy samples instead")
            _configure(self.config, relay, stack=False)

    # --- threads the Stack sampler has not seen ------------------------------------

    def _catch_thread_registry(self) -> None:
        """Keep the function with which the Stack sampler registers a thread's CPU timer.

        pyroscope-io hands it to ``pyroscope._install_stack_threads``, which registers the
        threads ``threading`` starts.  Threads started by native code (granian's Rust
        workers, which Python sees as dummy threads) never pass there:
        :meth:`see_current_thread` registers them when a root span starts on one.
        """
        import pyroscope

        install = getattr(pyroscope, "_install_stack_threads", None)
        if install is None or getattr(install, "_pyrospan", False):
            return

        def install_and_keep(threading_module: Any, register: Any, unregister: Any) -> Any:
            self._register_thread = register
            return install(threading_module, register, unregister)

        install_and_keep._pyrospan = True  # type: ignore[attr-defined]
        pyroscope._install_stack_threads = install_and_keep

    def see_current_thread(self) -> bool:
        """A root span starts on this thread: make sure the Stack sampler samples it.

        True when this thread needs no more checks (LabelSwitch keeps that per thread),
        False when the next root span on it must ask again.
        """
        if not self.sampling.stack:
            return True
        if not self._serving:
            self._serving = True
            self._serve_in_uwsgi()  # a uWSGI without a master serves in its first process
            if not self._still_stack():
                return True
        if self._register_thread is None:
            return False
        thread = threading.current_thread()
        if not isinstance(thread, threading._DummyThread):
            return True  # started by threading: registered by pyroscope-io itself
        ident = threading.get_ident()
        if ident in self._seen_threads:
            return True
        self._seen_threads.add(ident)
        if "gevent" in sys.modules or "eventlet" in sys.modules:
            return True  # a greenlet's "thread": its real thread is registered already
        try:
            self._register_thread(ident, threading.get_native_id())
        except Exception as exc:
            self.move_to_pyspy(f"a thread started outside Python could not be registered ({exc})")
            return True
        log.debug(f"Stack sampler: registered thread {thread.name} started outside Python")
        return True

    # --- moving to py-spy ----------------------------------------------------------

    def move_to_pyspy(self, reason: str, *, force: bool = False) -> bool:
        """``auto``: sample with py-spy from now on, for ``reason``, said in one line.

        With ``PYROSPAN_SAMPLER=stack`` nothing changes and one warning per reason names
        what is lost and what to set, unless ``force`` (the Stack sampler cannot go on
        safely).  True when py-spy runs afterwards.
        """
        if not self.sampling.stack or self._app_owns:
            return not self.sampling.stack
        if not (self.sampling.automatic or force):
            if reason not in self._warned:
                self._warned.add(reason)
                log.warning(
                    f"profiles: {reason}, which the Stack sampler cannot label "
                    "(PYROSPAN_SAMPLER=stack); set PYROSPAN_SAMPLER=auto or pyspy to profile it"
                )
            return False
        with self._switch_lock:
            # Another thread may have moved it while this one waited for the lock.
            return self._restart_on_pyspy(reason) if self._still_stack() else True

    def _still_stack(self) -> bool:
        return self.sampling.stack

    def _restart_on_pyspy(self, reason: str) -> bool:
        import pyroscope

        began = time.monotonic()
        # Thread tags set while no profiler runs would be lost: every thread's tag calls,
        # the label switch's and the app's own, wait for py-spy (tag_gate).  A backend that
        # never answers would hold the last Stack window's push for its timeout: the app
        # waits for the move at most this long.
        gate = TagGate(_move_wait(self.config.sample_rate))
        # A child forked during the move has no move thread to open the gate.
        os.register_at_fork(after_in_child=gate.opened)
        failure: list[BaseException] = []
        relay = self.relay if self.relay is not None and self.relay.running else None
        labels = self.labels
        # The label switch's and the app's tag functions, as they are before the move.
        gated = [(t, t.tag_functions()) for t in (labels, self.app_tags) if t is not None]

        def restart() -> None:
            try:
                pyroscope.shutdown()  # the Stack sampler's window is sent first
                stopped = time.monotonic()
                _configure(self.config, relay, stack=False)
                log.debug(
                    f"sampler switch: Stack stopped in {(stopped - began) * 1000:.0f} ms, "
                    f"py-spy started {(time.monotonic() - stopped) * 1000:.0f} ms later"
                )
            except BaseException as exc:
                failure.append(exc)
            finally:
                gate.opened(failed=bool(failure))
                # The gate's own wrappers are no longer needed once it is open.
                for target, (add, remove) in gated:
                    target.retarget(add, remove)

        self._change(self.sampling.on_pyspy(reason))
        for target, (add, remove) in gated:
            target.retarget(gate.adding(add), gate.removing(remove))
        with blocked_for_new_threads():
            threading.Thread(target=restart, name="pyrospan-sampler-switch", daemon=True).start()
        gate.wait_for_move()
        # Said as a warning when it overrides PYROSPAN_SAMPLER=stack.
        say = log.info if self.sampling.automatic else log.warning
        say(f"profiles: {reason}; this process moves to py-spy, which labels it")
        if failure:
            log.warning(f"profiles: py-spy did not start after the Stack sampler: {failure[0]}")
            return False
        if labels is not None:
            labels.reapply()  # this thread's labels, lost with the old profiler
        return True

    def _app_configured(self, arguments: dict[str, Any]) -> None:
        """The app's own ``pyroscope.configure()`` now runs the profiler, with its sampler.

        pyrospan-run no longer moves it anywhere (a move would restart the profiler with
        pyrospan-run's settings).
        """
        self._app_owns = True
        chosen = str(arguments.get("cpu_implementation", ""))
        if self.sampling.stack and not chosen.endswith("Stack"):
            self._change(self.sampling.on_pyspy("the app's own pyroscope.configure() chose it"))

    def _signal_taken(self, reason: str) -> None:
        # Even with PYROSPAN_SAMPLER=stack: the sampler would stop, or its timer's signal
        # reach the app's handler (billiard's exits the process).
        self.move_to_pyspy(reason, force=True)

    def app_tagged(self) -> None:
        """The app set its first thread tag: only py-spy reads thread tags."""
        self.move_to_pyspy(
            "the app sets its own thread tags (pyroscope.tag_wrapper, add_thread_tag)"
        )

    # --- fork and exit -------------------------------------------------------------

    def restart_in_child(self) -> None:
        """In a forked child: a relay and a sampler of its own, and the span's labels back.

        The sampler does not survive fork.  The Stack sampler cannot start again in a child
        on CPython 3.12+ (its CPU timers), so the child loads its own copy of the native
        module (agent/native_copy); when that fails, py-spy samples the child.
        """
        from pyrospan_launch.agent import relay as relays

        relay, labels = self.relay, self.labels
        assert labels is not None and self._handover is not None
        if relay is not None:
            try:
                relay.restart_in_child()
            except Exception as exc:
                # Closed, so that nothing in this child pushes to it (relay.running).
                with contextlib.suppress(Exception):
                    relay.close()
                log.warning(relays.not_started(exc, labels.frames, f" in pid {os.getpid()}"))
                self._change(self.sampling.with_tags("the profile relay could not start"))
        child_relay = relay if relay is not None and relay.running else None
        threads = _uwsgi_threads_against_stack()
        if threads is not None and self.sampling.stack and not self._app_owns:
            self._change(self.sampling.on_pyspy(threads))
            log.info(f"profiles: {threads}; py-spy samples this worker")
        if self.sampling.stack and sys.version_info >= CPU_TIMERS:
            self._fresh_native()
        if not self._handover.configure_again(child_relay):  # the app's own configure() won
            self._configure_or_fall_back(child_relay)
        self._serving = True  # a forked worker is handled here, not at its first root span
        self._guard_uwsgi_exit()
        labels.reapply()
        log.debug(f"forked from {os.getppid()}: profiler restarted ({self.sampling.describe()})")

    def _fresh_native(self) -> None:
        from pyrospan_launch.agent import native_copy

        try:
            native = native_copy.load_fresh(self._native_path)
            native_copy.adopt(native)
        except Exception as exc:
            reason = f"this forked child could not load its own Stack sampler ({exc})"
            self._change(self.sampling.on_pyspy(reason))
            log.warning(f"profiles: {reason}; py-spy samples it instead")
            return
        assert self.labels is not None
        self.labels.retarget(native.add_thread_tag, native.remove_thread_tag)
        if self.app_tags is not None:
            self.app_tags.move_to(native)

    def _serve_in_uwsgi(self) -> None:
        """The first root span of a process that was not forked: a uWSGI without a master?

        Its requests are served here, so the check a uWSGI worker needs is done now (see
        :meth:`restart_in_child` for forked workers; :meth:`start` armed the exit guard).
        """
        threads = _uwsgi_threads_against_stack()
        if threads is not None:
            self.move_to_pyspy(threads, force=True)

    def _guard_uwsgi_exit(self) -> None:
        """uWSGI: flush before ``exit()`` destroys pyroscope-io's native state.

        uWSGI ends a worker through ``exit()`` from a signal handler, and finalizes Python
        (our flush, pyroscope-io's own stop) only after the native module's destructors ran;
        its master ends through ``exit()`` too and never finalizes Python
        (agent/native_exit).  Each process arms its own guard: at the profiler's start (the
        master, or a uWSGI without one), and again in each forked worker, where the
        inherited registration does nothing.
        """
        from pyrospan_launch.agent.uwsgi_workers import in_uwsgi

        if not in_uwsgi():
            return
        if self._exit_guard is None:
            self._exit_guard = NativeExitGuard(self._flush_before_native_exit)
        if not self._exit_guard.arm():
            self.move_to_pyspy(
                "the Stack sampler cannot be stopped before uWSGI's exit in this process",
                force=True,
            )

    def _flush_before_native_exit(self) -> bool:
        """The exit flush, from uWSGI's ``exit()``; False if pyroscope-io's stop still runs.

        Past the flush's deadline the last window's helper may still be inside
        pyroscope-io's native shutdown, and ``exit()`` destroys that module next, under it
        (a worker died of SIGSEGV on a loaded machine).  So it gets longer here: the window
        is worth the wait.  If even that runs out, the guard ends the process at once.
        """
        self._lifecycle.flush_at_exit()
        if self._lifecycle.finish_exit_call(_LAST_WINDOW, _NATIVE_EXIT_GRACE):
            return True
        log.warning(
            f"exit: pyroscope-io's stop was still running after {_NATIVE_EXIT_GRACE:g} s more; "
            "the process ends now, without the exit handlers that would destroy it meanwhile"
        )
        return False

    def send_last_window(self) -> None:
        import pyroscope

        relay = self.relay
        pyroscope.shutdown()
        if relay is not None and relay.running:
            # Within the exit deadline (PYROSPAN_EXIT_TIMEOUT), leaving time to say what was lost.
            deadline = self._lifecycle.exit_timeout
            relay.drain(max(deadline - _EXIT_SUMMARY, deadline * 0.8))
            lost = relay.summary()
            if lost is not None:
                log.warning(lost)
            log.debug(f"relay: {relay.stats.summary()}")
