"""Console capture: tee the user's stdout/stderr into run log lines, as a terminal would show them."""

from __future__ import annotations

import atexit
import codecs
import contextlib
import logging
import os
import re
import select
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Literal, TextIO

__all__ = [
    "ConsoleCapture",
    "ConsoleMode",
    "LineBatch",
    "LoggingForwarder",
    "TerminalEmulator",
]

ConsoleMode = Literal["wrap", "redirect", "off"]
# (stream, line, unix timestamp) where stream is "stdout" or "stderr".
LineBatch = list[tuple[str, str, float]]

_STREAMS = ("stdout", "stderr")
# Complete escape sequences: CSI (ESC [ params final), OSC (ESC ] ... BEL|ST), charset
# designations such as `tput sgr0`'s ESC ( B, and the other two-byte escapes.
_ESCAPE = re.compile(r"\x1b(?:\[([0-?]*)([ -/]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]+[0-~]|[0-Z\\^-~])")
# What a chunk may end with when an escape sequence was cut in half by a read or a write call.
_ESCAPE_PREFIX = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*|[ -/]*)\Z")
_SPECIAL = re.compile(r"[\x1b\r\n\b]")
# An unterminated escape longer than this is garbage, not a sequence still arriving.
_MAX_HELD_ESCAPE = 4096
# Bound on accumulated colour codes between resets (a few attributes fit easily).
_MAX_STYLE = 256


class _Line:
    """One stream's line being drawn: characters, the colour state of each, and a cursor."""

    __slots__ = ("cells", "cursor", "held", "style", "styles")

    def __init__(self) -> None:
        self.cells: list[str] = []
        # Per cell, the SGR sequences in force when it was written ("" = default colours).
        self.styles: list[str] = []
        self.cursor = 0
        # Colour state outlives a newline, as in a terminal.
        self.style = ""
        # The unfinished tail of an escape sequence split across feeds.
        self.held = ""

    def text(self) -> str:
        if not any(self.styles):
            return "".join(self.cells)
        parts: list[str] = []
        current = ""
        for char, style in zip(self.cells, self.styles, strict=True):
            if style != current:
                # Reset before switching, so no attribute of the previous run leaks on.
                parts.append("\x1b[0m" + style if current else style)
                current = style
            parts.append(char)
        if current:
            parts.append("\x1b[0m")
        return "".join(parts)

    def reset(self) -> None:
        self.cells = []
        self.styles = []
        self.cursor = 0

    def is_blank(self) -> bool:
        return not self.cells

    def write(self, run: str) -> None:
        cells, styles = self.cells, self.styles
        if self.cursor > len(cells):
            pad = self.cursor - len(cells)
            cells.extend(" " * pad)
            styles.extend([""] * pad)
        start = self.cursor
        stop = start + len(run)
        cells[start:stop] = run
        styles[start:stop] = [self.style] * len(run)
        self.cursor = stop

    def csi(self, params: str, final: str) -> None:
        if final == "m":
            if params in ("", "0"):
                self.style = ""
            elif len(self.style) < _MAX_STYLE:
                self.style += f"\x1b[{params}m"
            else:
                # Colours set again and again without a reset; the latest one is what shows.
                self.style = f"\x1b[{params}m"
            return
        number = int(params) if params.isdigit() else 0
        if final == "K":
            if number == 0:
                del self.cells[self.cursor :]
                del self.styles[self.cursor :]
            elif number == 1:
                upto = min(self.cursor + 1, len(self.cells))
                self.cells[:upto] = " " * upto
                self.styles[:upto] = [""] * upto
            else:
                self.reset_keep_cursor()
        elif final == "G":
            self.cursor = max(number, 1) - 1
        elif final == "D":
            self.cursor = max(0, self.cursor - max(number, 1))
        elif final == "C":
            self.cursor += max(number, 1)
        # Other controls (cursor up, screen clears, ...) have no meaning in a line log.

    def reset_keep_cursor(self) -> None:
        self.cells = []
        self.styles = []


class TerminalEmulator:
    """Turns raw console text into the lines a terminal would end up showing.

    `\\r` moves back to column 0 and later characters overwrite earlier ones, so progress
    bars collapse to their final state; SGR colour codes are kept; erase-line is honoured.
    stdout and stderr each keep their own unfinished line.
    """

    def __init__(self) -> None:
        self._lines = {name: _Line() for name in _STREAMS}
        self._done: list[tuple[str, str]] = []

    def feed(self, text: str, stream: str) -> None:
        """Add a chunk of text written to `stream` ("stdout" or "stderr")."""
        name = "stderr" if stream == "stderr" else "stdout"
        line = self._lines[name]
        if line.held:
            text = line.held + text
            line.held = ""
        pos = 0
        end = len(text)
        while pos < end:
            special = _SPECIAL.search(text, pos)
            if special is None:
                line.write(text[pos:])
                break
            at = special.start()
            if at > pos:
                line.write(text[pos:at])
            char = text[at]
            if char == "\n":
                self._done.append((name, line.text()))
                line.reset()
                pos = at + 1
            elif char == "\r":
                line.cursor = 0
                pos = at + 1
            elif char == "\b":
                line.cursor = max(0, line.cursor - 1)
                pos = at + 1
            else:
                match = _ESCAPE.match(text, at)
                if match is not None:
                    if match.group(3) is not None:
                        line.csi(match.group(1), match.group(3))
                    pos = match.end()
                elif _ESCAPE_PREFIX.match(text, at) and end - at <= _MAX_HELD_ESCAPE:
                    line.held = text[at:]
                    break
                else:
                    pos = at + 1  # a stray ESC; drop it

    def pop_lines(self) -> list[tuple[str, str]]:
        """Return and forget the completed lines as (stream, text), in completion order."""
        done, self._done = self._done, []
        return done

    def flush(self) -> list[tuple[str, str]]:
        """Like `pop_lines`, plus each stream's unfinished last line (if not empty)."""
        done = self.pop_lines()
        for name, line in self._lines.items():
            line.held = ""
            if not line.is_blank():
                done.append((name, line.text()))
            line.reset()
        return done


class ConsoleCapture:
    """Tees stdout/stderr into batches of (stream, line, timestamp) while the terminal is unchanged.

    `wrap` patches `write` on `sys.stdout`/`sys.stderr` (Python-level output only);
    `redirect` swaps file descriptors 1/2 for pipes, so output of C code and child
    processes is caught too; `off` does nothing. `emit` runs on a background thread
    (and once more in `stop()`); its failures never reach the user's code.
    """

    def __init__(
        self,
        mode: ConsoleMode,
        emit: Callable[[LineBatch], None],
        *,
        flush_interval: float = 0.5,
        max_batch: int = 500,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.mode: ConsoleMode = mode if mode in ("wrap", "redirect") else "off"
        self._emit = emit
        self._flush_interval = max(0.01, float(flush_interval))
        self._max_batch = max(1, int(max_batch))
        self._on_error = on_error
        self._emulator = TerminalEmulator()
        # Re-entrant: a write inside our own bookkeeping on the same thread must not deadlock.
        self._lock = threading.RLock()
        self._emit_lock = threading.Lock()
        self._batch: LineBatch = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None
        self._active = False
        self._reported: set[str] = set()
        # wrap mode: (stream object, our tee, had its own `write` attribute, that attribute)
        self._patched: list[tuple[TextIO, object, bool, object]] = []
        self._replaced: list[tuple[str, TextIO]] = []
        # redirect mode
        self._saved_fds: dict[int, int] = {}
        self._read_fds: dict[int, int] = {}
        self._readers: list[threading.Thread] = []

    # ---- public

    def start(self) -> None:
        """Begin capturing; a no-op when already started or in mode `off`. Never raises."""
        with self._lock:
            if self._active or self.mode == "off":
                return
            self._active = True
            self._stopping.clear()
        try:
            if self.mode == "wrap":
                self._start_wrap()
            else:
                self._start_redirect()
        except Exception as exc:  # capture is optional; the user's run is not
            self._report("start", exc)
            with contextlib.suppress(Exception):
                self._restore()
            with self._lock:
                self._active = False
            return
        flusher = threading.Thread(target=self._flush_loop, name="branchline-console", daemon=True)
        self._flusher = flusher
        flusher.start()
        # Daemon readers die abruptly at exit, taking still-piped output with them, so a
        # forgotten stop() must still run.
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop capturing, restore the streams and emit everything left. Idempotent."""
        with self._lock:
            if not self._active:
                return
            self._active = False
        atexit.unregister(self.stop)
        for stream in (sys.stdout, sys.stderr):
            # Whatever Python still buffers must pass through the capture before it goes.
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        try:
            self._restore()
        except Exception as exc:  # stop() runs at exit; it must not raise
            self._report("stop", exc)
        self._stopping.set()
        self._wake.set()
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        with self._lock:
            now = time.time()
            self._batch.extend((s, t, now) for s, t in self._emulator.flush())
        self._emit_pending()

    def feed(self, stream: str, text: str) -> None:
        """Record text written to `stream`; used by both modes, callable from any thread."""
        try:
            with self._lock:
                self._emulator.feed(text, stream)
                lines = self._emulator.pop_lines()
                if lines:
                    now = time.time()
                    self._batch.extend((s, t, now) for s, t in lines)
                    if len(self._batch) >= self._max_batch:
                        self._wake.set()
        except Exception as exc:  # called inside the user's print()
            self._report("feed", exc)

    # ---- wrap mode

    def _start_wrap(self) -> None:
        for name in _STREAMS:
            stream: TextIO | None = getattr(sys, name)
            if stream is None:
                continue
            original_write = stream.write
            tee = self._make_tee(name, original_write)
            own = vars(stream) if hasattr(stream, "__dict__") else None
            try:
                had_attr = own is not None and "write" in own
                previous = own.get("write") if own is not None else None
                stream.write = tee  # type: ignore[method-assign]
                self._patched.append((stream, tee, had_attr, previous))
            except (AttributeError, TypeError):
                # Streams without an instance dict cannot be patched; stand a proxy in front.
                setattr(sys, name, _TeeProxy(stream, tee))
                self._replaced.append((name, stream))

    def _make_tee(self, name: str, write: Callable[[str], int]) -> Callable[[str], int]:
        def tee(text: str) -> int:
            written = write(text)
            if isinstance(text, str):
                self.feed(name, text)
            return written

        return tee

    def _restore_wrap(self) -> None:
        while self._patched:
            stream, tee, had_attr, previous = self._patched.pop()
            try:
                if vars(stream).get("write") is not tee:
                    continue  # someone patched over us; removing theirs would break them
                if had_attr:
                    stream.write = previous  # type: ignore[method-assign,assignment]
                else:
                    del stream.write
            except (AttributeError, TypeError) as exc:
                self._report("restore", exc)
        while self._replaced:
            name, stream = self._replaced.pop()
            if isinstance(getattr(sys, name), _TeeProxy):
                setattr(sys, name, stream)

    # ---- redirect mode

    def _start_redirect(self) -> None:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            py_stream: TextIO | None = getattr(sys, name)
            # Flush first, or output written before start() would be captured as if new.
            with contextlib.suppress(Exception):
                if py_stream is not None:
                    py_stream.flush()
            saved = os.dup(fd)
            try:
                read_fd, write_fd = _open_channel(fd)
            except OSError:
                os.close(saved)
                raise
            try:
                os.dup2(write_fd, fd)
            except OSError:
                for leftover in (saved, read_fd, write_fd):
                    os.close(leftover)
                raise
            # fd 1/2 now hold the only needed write end, so EOF arrives once they are restored.
            os.close(write_fd)
            self._saved_fds[fd] = saved
            self._read_fds[fd] = read_fd
            reader = threading.Thread(
                target=self._read_loop,
                args=(name, read_fd, saved),
                name=f"branchline-console-{name}",
                daemon=True,
            )
            self._readers.append(reader)
            reader.start()

    def _read_loop(self, name: str, read_fd: int, terminal_fd: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # poll(), not select(): training processes often hold more than 1024 descriptors.
        # Windows has neither for pipes; there a blocking read ends at EOF only.
        poller = select.poll() if hasattr(select, "poll") else None
        if poller is not None:
            poller.register(read_fd, select.POLLIN)
        while True:
            if poller is not None:
                try:
                    ready = poller.poll(100)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not ready:
                    # Stopped and drained; a lingering child may hold the write end open forever.
                    if self._stopping.is_set():
                        break
                    continue
            try:
                chunk = os.read(read_fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not chunk:
                break
            self._write_all(terminal_fd, chunk)
            self.feed(name, decoder.decode(chunk))
        tail = decoder.decode(b"", final=True)
        if tail:
            self.feed(name, tail)

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except InterruptedError:
                continue
            except OSError as exc:
                self._report("terminal", exc)
                return
            view = view[written:]

    def _restore_redirect(self) -> None:
        for fd, saved in list(self._saved_fds.items()):
            try:
                os.dup2(saved, fd)
            except OSError as exc:
                self._report("restore", exc)
        # Let the readers drain what is still in the pipes before anything is closed.
        self._stopping.set()
        for reader in self._readers:
            if reader is not threading.current_thread():
                reader.join(timeout=5.0)
        self._readers = []
        for fd_map in (self._read_fds, self._saved_fds):
            for fd in fd_map.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            fd_map.clear()

    # ---- shared

    def _restore(self) -> None:
        self._restore_wrap()
        self._restore_redirect()

    def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._emit_pending()

    def _emit_pending(self) -> None:
        with self._emit_lock:
            with self._lock:
                batch, self._batch = self._batch, []
            if not batch:
                return
            try:
                self._emit(batch)
            except Exception as exc:  # a broken sink must not break the run
                self._report("emit", exc)

    def _report(self, what: str, exc: BaseException) -> None:
        # Once per kind: the console is the last place that should fill up with our own errors.
        if what in self._reported:
            return
        self._reported.add(what)
        # The callback may fail too, or warnings may be configured to raise.
        with contextlib.suppress(Exception):
            if self._on_error is not None:
                self._on_error(exc)
            else:
                warnings.warn(
                    f"branchline: console capture ({what}) failed: {exc!r}",
                    RuntimeWarning,
                    stacklevel=2,
                )


def _open_channel(fd: int) -> tuple[int, int]:
    """A (read end, write end) pair to put under `fd`.

    When `fd` is a terminal this is a pseudo-terminal, not a pipe, so `isatty()` stays true
    and programs keep their colours, progress bars and line buffering.
    """
    if sys.platform != "win32" and os.isatty(fd):
        import fcntl
        import termios

        master, slave = os.openpty()
        try:
            attrs = termios.tcgetattr(slave)
            # No output processing: bytes must reach the real terminal exactly as written.
            attrs[1] &= ~termios.OPOST
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            size = fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8))
            fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        except OSError:
            pass  # a pty with default settings still beats a pipe
        return master, slave
    return os.pipe()


class _TeeProxy:
    """Stands in for a stream whose `write` cannot be patched; everything else passes through."""

    def __init__(self, stream: TextIO, write: Callable[[str], int]) -> None:
        self._stream = stream
        self.write = write

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


class LoggingForwarder(logging.Handler):
    """A logging handler that turns records into console lines (WARNING and above on stderr)."""

    def __init__(
        self,
        emit: Callable[[LineBatch], None],
        level: int = logging.NOTSET,
        *,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(level)
        self._sink = emit
        self._on_error = on_error
        self._failed = False
        # A sink that itself logs would otherwise recurse into this handler.
        self._busy = threading.local()
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one record as one line per line of its formatted text."""
        if getattr(self._busy, "active", False):
            return
        self._busy.active = True
        try:
            stream = "stderr" if record.levelno >= logging.WARNING else "stdout"
            text = self.format(record)
            self._sink([(stream, line, record.created) for line in text.splitlines() or [""]])
        except Exception as exc:  # logging calls must never raise
            if not self._failed:
                self._failed = True
                with contextlib.suppress(Exception):
                    if self._on_error is not None:
                        self._on_error(exc)
                    else:
                        warnings.warn(
                            f"branchline: forwarding log records failed: {exc!r}",
                            RuntimeWarning,
                            stacklevel=2,
                        )
        finally:
            self._busy.active = False
