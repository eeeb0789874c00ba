"""The sandbox's live view on a terminal: the plugin's ``kubectl coalmine get -w`` table, pinned under the log.

Why not simply run ``kubectl coalmine get -w`` beside the sandbox (as it once did)? Two processes then write to one
terminal. Rich's live display redraws its frame by moving the cursor up over the lines it drew last and erasing
them; every narration line the sandbox printed in between shifted the frame down, so each redraw erased narration
instead of its old frame (a header left behind per redraw, the "Releasing …" lines gone), and the view, refreshed
every 2 s and stopped by SIGTERM, never drew the last state: the screen ended on a stale ``Progressing`` frame.

Here one process owns the terminal. :class:`TerminalView` renders the plugin's own table (the same reading,
summary and rendering functions ``get -w`` uses: :func:`~controller.cli.kubectl.access.list_rollouts`,
:func:`~controller.cli.kubectl.summary.summarize`, :func:`~controller.cli.kubectl.render.rollout_table`) in a
:class:`rich.live.Live`, prints every narration line and every change of phase, weight or message *above* it
(through the Live's console, which keeps the frame in place), and draws the last state before it stops, so the
frame left on screen is how the scenario ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from controller.cli.kubectl.access import Cluster, list_rollouts
from controller.cli.kubectl.render import rollout_table
from controller.cli.kubectl.summary import now_epoch, summarize
from e2e.sandbox.observe import Sample

REFRESHES_PER_S = 2.0  # the sampler's pace (every 0.5 s); the plugin's own -w refreshes every 2 s


def change_line(sample: Sample) -> str:
    """One line of the log: when, phase, the mesh's canary weight and the status message."""
    return f"  [{sample.t:6.1f}s] {sample.phase:<12} weight {sample.mesh_weight or 0:>3}%  {sample.message}"


class ChangeLog:
    """Calls ``echo`` with :func:`change_line` whenever phase, weight or message changes (the log of a run)."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.last: tuple[str, int | None, str] | None = None

    def __call__(self, sample: Sample) -> None:
        key = (sample.phase, sample.mesh_weight, sample.message)
        if key != self.last and sample.phase:
            self.last = key
            self.echo(change_line(sample))


class TerminalView:
    """The plugin's table of the Canaries in ``namespace``, live at the bottom of ``console``; the log above it.

    Use as a context manager; while open, :meth:`echo` prints a narration line and calling the view with a
    :class:`Sample` logs a change. Leaving it draws the current state once more and stops the display.
    """

    def __init__(self, cluster: Cluster, namespace: str, console: Console | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.console = console or Console(highlight=False, soft_wrap=False)  # what the plugin's -w uses
        self.changes = ChangeLog(self.echo)
        self._lock = threading.Lock()
        self._frame: RenderableType = Text("waiting for the first Canary …")
        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=REFRESHES_PER_S,
            # anything else printed meanwhile (a warning on stderr, a stray print) goes above the frame too
            redirect_stdout=True,
            redirect_stderr=True,
        )

    def _render(self) -> RenderableType:
        """The plugin's table as the API has it now; on a failed read, the last frame (the display must not die
        mid-run because one read timed out)."""
        with self._lock:
            try:
                summaries = [summarize(obj) for obj in list_rollouts(self.cluster, self.namespace)]
            except Exception:  # a display thread must outlive one failed read (timeout, reset, 5xx)
                return self._frame
            if summaries:
                self._frame = rollout_table(summaries, now_epoch())
            return self._frame

    def echo(self, text: str) -> None:
        """Print ``text`` above the live frame (plain text: a message's brackets are not markup)."""
        self.console.print(Text(text), soft_wrap=True)

    def __call__(self, sample: Sample) -> None:
        self.changes(sample)

    def start(self) -> TerminalView:
        """Draw the first frame and keep it live until :meth:`close`."""
        self._live.start(refresh=True)
        return self

    def __enter__(self) -> TerminalView:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Draw the state as it is now, leave that frame on screen and give the terminal back (idempotent)."""
        if self._live.is_started:
            self._live.refresh()
            self._live.stop()
