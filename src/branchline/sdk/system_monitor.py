"""System metrics: a background sampler for CPU, memory, network, disk and NVIDIA GPUs."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

import psutil

__all__ = [
    "MIN_INTERVAL",
    "SystemMonitor",
    "nvidia_cuda_version",
    "nvidia_gpu_info",
    "nvidia_gpu_sample",
]

MIN_INTERVAL = 0.1
# Event.wait overflows on huge timeouts; a day is "effectively never" for a sampler.
_MAX_INTERVAL = 86_400.0
_DEFAULT_INTERVAL = 15.0
_MIB = 1024.0 * 1024.0
_GIB = _MIB * 1024.0
_T = TypeVar("_T")


def _clamp_interval(interval: object) -> float:
    """Turn any user-supplied interval into a usable wait time, never raising."""
    try:
        value = float(interval)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _DEFAULT_INTERVAL
    if math.isnan(value) or value < MIN_INTERVAL:
        return MIN_INTERVAL
    return min(value, _MAX_INTERVAL)


# --------------------------------------------------------------------------------------------
# NVIDIA (NVML)


def _call(func: Callable[..., Any], *args: Any) -> Any | None:
    """Call into NVML; None when the driver refuses (unsupported field, lost GPU, ...)."""
    try:
        return func(*args)
    except Exception:  # NVML raises its own error tree; any failure = no value
        return None


class _Nvml:
    """An open NVML session; `None` from `open()` means no usable driver or GPU."""

    def __init__(self, lib: ModuleType) -> None:
        self._lib = lib
        self._closed = False

    @classmethod
    def open(cls) -> _Nvml | None:
        try:
            lib = importlib.import_module("pynvml")
        except ImportError:
            return None
        try:
            lib.nvmlInit()
        except Exception:  # no driver, no library, or a broken install
            return None
        session = cls(lib)
        if (_call(lib.nvmlDeviceGetCount) or 0) > 0:
            return session
        session.close()
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _call(self._lib.nvmlShutdown)

    def _handles(self) -> list[Any]:
        lib = self._lib
        count = int(_call(lib.nvmlDeviceGetCount) or 0)
        return [_call(lib.nvmlDeviceGetHandleByIndex, i) for i in range(count)]

    def sample(self) -> dict[str, float]:
        lib = self._lib
        out: dict[str, float] = {}
        for index, handle in enumerate(self._handles()):
            if handle is None:
                continue
            prefix = f"gpu.{index}."
            # Every field is fetched on its own: consumer cards and MIG slices refuse some
            # queries, and one refusal must not lose the rest.
            util = _call(lib.nvmlDeviceGetUtilizationRates, handle)
            if util is not None:
                out[prefix + "gpu"] = float(util.gpu)
                out[prefix + "memory"] = float(util.memory)
            mem = _call(lib.nvmlDeviceGetMemoryInfo, handle)
            if mem is not None:
                out[prefix + "memoryAllocatedBytes"] = float(mem.used)
                if mem.total:
                    out[prefix + "memoryAllocated"] = 100.0 * mem.used / mem.total
            temp = _call(lib.nvmlDeviceGetTemperature, handle, lib.NVML_TEMPERATURE_GPU)
            if temp is not None:
                out[prefix + "temp"] = float(temp)
            power = _call(lib.nvmlDeviceGetPowerUsage, handle)  # milliwatts
            if power is not None:
                out[prefix + "powerWatts"] = power / 1000.0
            limit = _call(lib.nvmlDeviceGetEnforcedPowerLimit, handle)  # milliwatts
            if limit is not None:
                out[prefix + "enforcedPowerLimitWatts"] = limit / 1000.0
            if power is not None and limit:
                out[prefix + "powerPercent"] = 100.0 * power / limit
            for key, clock in (
                ("smClock", lib.NVML_CLOCK_SM),
                ("memoryClock", lib.NVML_CLOCK_MEM),
                ("graphicsClock", lib.NVML_CLOCK_GRAPHICS),
            ):
                mhz = _call(lib.nvmlDeviceGetClockInfo, handle, clock)
                if mhz is not None:
                    out[prefix + key] = float(mhz)
        return out

    def info(self) -> list[dict[str, object]]:
        lib = self._lib
        gpus: list[dict[str, object]] = []
        for handle in self._handles():
            entry: dict[str, object] = {}
            name = _call(lib.nvmlDeviceGetName, handle) if handle is not None else None
            if name is not None:
                # Older bindings return bytes, newer ones str.
                entry["name"] = name.decode() if isinstance(name, bytes) else str(name)
            mem = _call(lib.nvmlDeviceGetMemoryInfo, handle) if handle is not None else None
            if mem is not None:
                entry["memoryTotal"] = int(mem.total)
            gpus.append(entry)
        return gpus

    def cuda_version(self) -> str | None:
        version = _call(self._lib.nvmlSystemGetCudaDriverVersion)
        if not isinstance(version, int) or version <= 0:
            return None
        return f"{version // 1000}.{(version % 1000) // 10}"


def nvidia_gpu_sample() -> dict[str, float]:
    """One sample of every NVIDIA GPU (`gpu.<i>.<metric>`); `{}` without pynvml, driver or GPU."""
    session = _Nvml.open()
    if session is None:
        return {}
    try:
        return session.sample()
    finally:
        session.close()


def nvidia_gpu_info() -> list[dict[str, object]]:
    """Static facts per NVIDIA GPU (`name`, `memoryTotal` in bytes); `[]` when there is none."""
    session = _Nvml.open()
    if session is None:
        return []
    try:
        return session.info()
    finally:
        session.close()


def nvidia_cuda_version() -> str | None:
    """The CUDA version the NVIDIA driver supports (e.g. `"12.4"`), or None."""
    session = _Nvml.open()
    if session is None:
        return None
    try:
        return session.cuda_version()
    finally:
        session.close()


# --------------------------------------------------------------------------------------------
# The monitor


class SystemMonitor:
    """Samples system metrics every `interval` seconds on a daemon thread and hands them to `emit`.

    Keys carry no `system.` prefix; the caller adds it.
    """

    def __init__(
        self,
        interval: float,
        emit: Callable[[dict[str, float]], None],
        *,
        disk_paths: Sequence[str] = ("/",),
        pid: int | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._interval = _clamp_interval(interval)
        self._emit = emit
        self._disk_paths = tuple(disk_paths)
        self._on_error = on_error
        self._pid = os.getpid() if pid is None else pid
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()
        self._cpu_count = psutil.cpu_count(logical=True) or 1
        self._process: psutil.Process | None = None
        # Children are cached so their cpu_percent() keeps its previous reading between samples.
        self._children: dict[int, psutil.Process] = {}
        self._cpu_primed = False
        self._net_base: tuple[int, int] | None = None
        self._disk_base: tuple[int, int] | None = None
        self._nvml: _Nvml | None = None
        self._nvml_tried = False
        self._prime()

    @property
    def interval(self) -> float:
        """The effective sampling interval after clamping."""
        return self._interval

    def start(self) -> None:
        """Start the sampling thread (no-op when already running)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop_event.clear()
            self._prime()
            thread = threading.Thread(target=self._run, name="branchline-system-monitor", daemon=True)
            self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the sampling thread and wait for it; safe to call any number of times."""
        self._stop_event.set()
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            if self._nvml is not None:
                self._nvml.close()
                self._nvml = None
            self._nvml_tried = False

    def sample(self) -> dict[str, float]:
        """Take one sample now; never raises (failed parts are missing and reported once)."""
        with self._lock:
            out: dict[str, float] = {}
            for name, part in (
                ("process", self._sample_process),
                ("memory", self._sample_memory),
                ("network", self._sample_network),
                ("disk", self._sample_disk),
                ("gpu", self._sample_gpu),
            ):
                self._guarded(name, part, out)
            return out

    # ---- internals

    def _run(self) -> None:
        while not self._stop_event.wait(self._interval):
            values = self.sample()
            if self._stop_event.is_set():
                break
            self._guarded("emit", self._emit, values)

    def _guarded(self, part: str, func: Callable[[_T], object], arg: _T) -> None:
        try:
            func(arg)
        except Exception as exc:  # the sampler must outlive any failure
            self._report(part, exc)

    def _report(self, part: str, exc: BaseException) -> None:
        # Once per part: a broken sensor would otherwise warn every interval forever.
        if part in self._reported:
            return
        self._reported.add(part)
        # A failing error callback (or warnings turned into errors) must not stop sampling.
        with contextlib.suppress(Exception):
            if self._on_error is not None:
                self._on_error(exc)
            else:
                warnings.warn(
                    f"branchline: system metrics ({part}) failed: {exc!r}",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def _prime(self) -> None:
        self._guarded("process", self._prime_cpu, None)
        self._guarded("network", self._prime_network, None)
        self._guarded("disk", self._prime_disk, None)

    def _prime_cpu(self, _: None) -> None:
        # psutil's cpu_percent() compares against the previous call, so the first call
        # only records a baseline; doing it here lets the first real sample carry `cpu`.
        if self._process is None:
            self._process = psutil.Process(self._pid)
        if not self._cpu_primed:
            self._process.cpu_percent(None)
            for child in self._process.children(recursive=True):
                self._children.setdefault(child.pid, child).cpu_percent(None)
            self._cpu_primed = True

    def _prime_network(self, _: None) -> None:
        if self._net_base is None:
            net = psutil.net_io_counters()
            self._net_base = (net.bytes_sent, net.bytes_recv)

    def _prime_disk(self, _: None) -> None:
        if self._disk_base is None:
            disk = psutil.disk_io_counters()
            if disk is not None:
                self._disk_base = (disk.read_bytes, disk.write_bytes)

    def _sample_process(self, out: dict[str, float]) -> None:
        if self._process is None:
            self._process = psutil.Process(self._pid)
        process = self._process
        with process.oneshot():
            cpu = process.cpu_percent(None)
            rss = float(process.memory_info().rss)
            out["proc.cpu.threads"] = float(process.num_threads())
        try:
            children = process.children(recursive=True)
        except psutil.Error:
            children = []
        alive: dict[int, psutil.Process] = {}
        for fresh in children:
            child = self._children.get(fresh.pid, fresh)
            try:
                cpu += child.cpu_percent(None)
                rss += float(child.memory_info().rss)
            except psutil.Error:
                # Children exit between listing and reading; that is normal, not an error.
                continue
            alive[child.pid] = child
        self._children = alive
        if self._cpu_primed:
            out["cpu"] = cpu / self._cpu_count
        self._cpu_primed = True
        out["proc.memory.rssMB"] = rss / _MIB
        total = float(psutil.virtual_memory().total)
        if total > 0:
            out["proc.memory.percent"] = 100.0 * rss / total

    def _sample_memory(self, out: dict[str, float]) -> None:
        vm = psutil.virtual_memory()
        out["memory_percent"] = float(vm.percent)
        out["proc.memory.availableMB"] = float(vm.available) / _MIB

    def _sample_network(self, out: dict[str, float]) -> None:
        net = psutil.net_io_counters()
        if self._net_base is None:
            self._net_base = (net.bytes_sent, net.bytes_recv)
        out["network.sent"] = float(net.bytes_sent - self._net_base[0])
        out["network.recv"] = float(net.bytes_recv - self._net_base[1])

    def _sample_disk(self, out: dict[str, float]) -> None:
        first_error: OSError | psutil.Error | None = None
        for path in self._disk_paths:
            try:
                usage = psutil.disk_usage(path)
            except (OSError, psutil.Error) as exc:
                first_error = first_error or exc
                continue
            out[f"disk.{path}.usagePercent"] = float(usage.percent)
            out[f"disk.{path}.usageGB"] = float(usage.used) / _GIB
        try:
            io = psutil.disk_io_counters()
        except (OSError, psutil.Error, RuntimeError):
            io = None  # containers often have no /proc/diskstats; the keys are simply absent
        if io is not None:
            if self._disk_base is None:
                self._disk_base = (io.read_bytes, io.write_bytes)
            out["disk.in"] = float(io.read_bytes - self._disk_base[0]) / _MIB
            out["disk.out"] = float(io.write_bytes - self._disk_base[1]) / _MIB
        if first_error is not None:
            raise first_error

    def _sample_gpu(self, out: dict[str, float]) -> None:
        # NVML is opened once and kept: nvmlInit per sample costs far more than the sample.
        if not self._nvml_tried:
            self._nvml_tried = True
            self._nvml = _Nvml.open()
        if self._nvml is not None:
            out.update(self._nvml.sample())
