"""Device fingerprint: what a benchmark ran on, so a number can be traced to a CPU, GPU or Jetson setting.

Every parser takes the text it reads (``/proc/cpuinfo``, ``/etc/nv_tegra_release``, ``nvpmodel -q``...)
so it is tested with recorded samples anywhere; :func:`fingerprint` reads the real files and commands.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

ISA_FLAGS = {  # reported name -> /proc/cpuinfo flags meaning it (any of)
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",),
    "avx512_bf16": ("avx512_bf16",),
    "amx": ("amx_tile",),
    "neon": ("asimd", "neon"),
    "arm_dotprod": ("asimddp",),
}
LIBRARIES = ("numpy", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "tensorrt",
             "opencv-python-headless")
# L4T major.minor -> JetPack release (NVIDIA's published pairs; unknown pairs are reported as L4T only)
JETPACK = {
    "32.7": "4.6.x", "34.1": "5.0", "35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2",
    "35.5": "5.1.3", "35.6": "5.1.4", "36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1/6.2",
}


def parse_cpuinfo(text: str) -> dict:
    """CPU model, logical cores and the ISA extensions that decide which kernels a runtime picks."""
    model = ""
    flags: set[str] = set()
    cores = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            cores += 1
        elif key in ("model name", "hardware", "cpu model") and not model:
            model = value
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    isa = {name: any(f in flags for f in needed) for name, needed in ISA_FLAGS.items()}
    return {"model": model or platform.processor() or platform.machine(), "logical_cores": cores, "isa": isa}


def parse_meminfo(text: str) -> float:
    """Total RAM in GiB from /proc/meminfo."""
    match = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 2) if match else 0.0


def parse_tegra_release(text: str) -> dict:
    """``# R35 (release), REVISION: 4.1, GCID: ...`` -> L4T 35.4.1 and its JetPack release."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not match:
        return {}
    major, revision = match.group(1), match.group(2)
    l4t = f"{major}.{revision}"
    minor = revision.split(".")[0]
    return {"l4t": l4t, "jetpack": JETPACK.get(f"{major}.{minor}", "unknown")}


def parse_nvpmodel(text: str) -> dict:
    """``nvpmodel -q`` output -> power mode name and id."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    ids = re.findall(r"^\s*(\d+)\s*$", text, re.MULTILINE)
    return {"mode": name.group(1) if name else None, "id": int(ids[-1]) if ids else None}


def parse_jetson_clocks(text: str) -> bool | None:
    """``jetson_clocks --show``: clocks are locked when every CPU runs at MinFreq == MaxFreq == CurrentFreq."""
    cpus = re.findall(r"cpu\d+: .*?MinFreq=(\d+) MaxFreq=(\d+) CurrentFreq=(\d+)", text)
    if not cpus:
        return None
    return all(lo == hi == cur for lo, hi, cur in cpus)


def parse_nvidia_smi(text: str) -> list[dict]:
    """``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader`` -> one dict per GPU."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _run(cmd: list[str], timeout: float = 10) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_governors(root: str | Path = "/sys/devices/system/cpu") -> list[str]:
    """The distinct scaling governors of all CPUs (empty where cpufreq is not exposed, as in most VMs)."""
    return sorted({_read(p).strip() for p in Path(root).glob("cpu[0-9]*/cpufreq/scaling_governor")} - {""})


def library_versions() -> dict[str, str]:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(repo: str | Path | None = None) -> dict:
    """HEAD commit and whether the working tree had changes when the benchmark ran."""
    repo = Path(repo or Path(__file__).resolve().parents[2])
    if shutil.which("git") is None or not (repo / ".git").exists():
        return {"commit": None, "dirty": None}
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True).stdout
    return {"commit": head or None, "dirty": bool(status.strip())}


def gpu_info() -> dict | None:
    """GPU name, driver and CUDA version (None without an NVIDIA GPU)."""
    gpus = parse_nvidia_smi(_run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader"]))
    cuda = None
    try:
        import torch

        if torch.cuda.is_available():
            cuda = torch.version.cuda
            if not gpus:  # Jetson: no nvidia-smi, the integrated GPU is seen through torch
                gpus = [{"name": torch.cuda.get_device_name(0), "driver": None, "memory": None}]
    except ImportError:
        pass
    if not gpus:
        return None
    return {"devices": gpus, "cuda": cuda}


def jetson_info(root: str | Path = "/") -> dict | None:
    """Jetson model, L4T/JetPack, power mode and clock lock (None off Jetson)."""
    root = Path(root)
    release = _read(root / "etc/nv_tegra_release")
    model = _read(root / "proc/device-tree/model").strip("\x00\n ")
    if not release and "jetson" not in model.lower():
        return None
    return {
        "model": model or None,
        **parse_tegra_release(release),
        "nvpmodel": parse_nvpmodel(_run(["nvpmodel", "-q"])),
        "jetson_clocks": parse_jetson_clocks(_run(["jetson_clocks", "--show"])),
    }


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def fingerprint() -> dict:
    """Everything about this machine that changes a latency number."""
    cpu = parse_cpuinfo(_read("/proc/cpuinfo"))
    cpu["logical_cores"] = cpu["logical_cores"] or os.cpu_count() or 0
    cpu["usable_cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpu["logical_cores"]
    cpu["governors"] = cpu_governors()
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', _read("/etc/os-release"), re.MULTILINE))
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "ram_gib": parse_meminfo(_read("/proc/meminfo")),
        "os": {"system": platform.system(), "release": platform.release(),
               "distribution": os_release.get("PRETTY_NAME", ""), "python": platform.python_version()},
        "gpu": gpu_info(),
        "jetson": jetson_info(),
        "libraries": library_versions(),
        "git": git_commit(),
        "load_average": load_average(),
    }


def device_name(fp: dict) -> str:
    """A short file-name-safe label: Jetson model, else GPU, else CPU model and core count."""
    if fp.get("jetson") and fp["jetson"].get("model"):
        label = fp["jetson"]["model"]
    elif fp.get("gpu"):
        label = fp["gpu"]["devices"][0]["name"]
    else:
        label = f"{fp['cpu']['model']} {fp['cpu']['logical_cores']}c"
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def preflight_warnings(fp: dict, busy_threshold: float = 0.5) -> list[str]:
    """Conditions under which the measured numbers would mislead, as one line each."""
    warnings = []
    jetson = fp.get("jetson")
    if jetson:
        mode = (jetson.get("nvpmodel") or {}).get("mode")
        if mode is None:
            warnings.append("Jetson power mode unknown (nvpmodel -q failed): results may not be at max power")
        elif "MAXN" not in mode.upper():
            warnings.append(f"Jetson power mode is {mode}, not MAXN: run `sudo nvpmodel -m 0`")
        if jetson.get("jetson_clocks") is not True:
            warnings.append("Jetson clocks are not locked: run `sudo jetson_clocks`")
    governors = fp["cpu"].get("governors") or []
    if governors and governors != ["performance"]:
        warnings.append(f"CPU governor is {', '.join(governors)}, not performance: frequency scaling adds noise")
    cores = fp["cpu"].get("usable_cores") or fp["cpu"].get("logical_cores") or 1
    load1 = (fp.get("load_average") or [0.0])[0]
    if load1 > busy_threshold * cores:
        warnings.append(f"another process is loading the CPU: 1-min load average {load1:.2f} on {cores} cores")
    return warnings
