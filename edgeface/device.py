"""Facts about the machine: host CPU / RAM / OS, NVIDIA GPU, Jetson L4T / JetPack and library versions.

The convert manifest, the TensorRT runner and the benchmark fingerprint all describe a machine through this
one module, so an engine's build facts and a latency number's device read the same tables. Every parser
takes the text it reads (``/proc/cpuinfo``, ``/etc/nv_tegra_release``, ``nvpmodel -q``...) so it is tested
with recorded samples anywhere. Standard library only: torch, the CUDA bindings and tensorrt are imported lazily.
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
VNNI = ("avx512_vnni", "avx_vnni", "amx")  # ISA_FLAGS names with 8-bit dot-product instructions
LIBRARIES = ("numpy", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "tensorrt",
             "opencv-python-headless")
# L4T major.minor -> JetPack release, NVIDIA's published pairs. JetPack 6.1 (L4T 36.4.0), 6.2 (36.4.3) and
# 6.2.1 (36.4.4) share one entry: all ship TensorRT 10.3, so an engine built on one runs on the others.
# JetPack 7 (L4T 38.x, Jetson Thor and Orin, CUDA 13): 7.0 = L4T 38.2, 7.1 = L4T 38.4.
JETPACK = {
    "32.7": "4.6.x", "34.1": "5.0", "35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2",
    "35.5": "5.1.3", "35.6": "5.1.4", "36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1/6.2", "38.2": "7.0",
    "38.4": "7.1",
}


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


# -- host -------------------------------------------------------------------------------------------------

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


def cpu_has_vnni(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether this x86 CPU has VNNI (or is not x86): without it ONNX Runtime's 8-bit x 8-bit kernels
    (AVX2 vpmaddubsw) saturate their int16 pair sums, so INT8 weights must use 7 bits (``reduce_range``)."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64", "i686"):
        return True
    text = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    if not text:
        return True
    isa = parse_cpuinfo(text)["isa"]
    return any(isa[name] for name in VNNI)


def cpu_governors(root: str | Path = "/sys/devices/system/cpu") -> list[str]:
    """The distinct scaling governors of all CPUs (empty where cpufreq is not exposed, as in most VMs)."""
    return sorted({_read(p).strip() for p in Path(root).glob("cpu[0-9]*/cpufreq/scaling_governor")} - {""})


def cpu_info() -> dict:
    """This machine's CPU: model, ISA, logical and usable cores (affinity), frequency governors."""
    cpu = parse_cpuinfo(_read("/proc/cpuinfo"))
    cpu["logical_cores"] = cpu["logical_cores"] or os.cpu_count() or 0
    cpu["usable_cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpu["logical_cores"]
    cpu["governors"] = cpu_governors()
    return cpu


def ram_gib() -> float:
    return parse_meminfo(_read("/proc/meminfo"))


def os_info() -> dict:
    """Kernel, distribution and Python version."""
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', _read("/etc/os-release"), re.MULTILINE))
    return {"system": platform.system(), "release": platform.release(),
            "distribution": os_release.get("PRETTY_NAME", ""), "python": platform.python_version()}


def host_facts() -> dict:
    """The short host summary a manifest records as the build device of CPU-built artifacts."""
    return {"host": platform.node(), "machine": platform.machine(), "os": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# -- NVIDIA GPU -------------------------------------------------------------------------------------------

def parse_nvidia_smi(text: str) -> list[dict]:
    """``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader`` -> one dict per GPU."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def gpu_info() -> dict | None:
    """Every GPU's name, driver and memory plus the CUDA version, for a benchmark (None without a GPU)."""
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


def gpu_facts() -> dict:
    """{"gpu": name, "compute_capability": "8.7", "cuda_library": ...} of device 0 as pycuda or cuda-python (hence
    TensorRT) sees it, or {"error": why}.

    This is what a TensorRT plan is tied to, so the build records it and the runner compares against it.
    """
    from edgeface.cuda_driver import device_facts

    return device_facts(0)


def tensorrt_unavailable() -> str | None:
    """Why TensorRT engines cannot be built or run here, or None when they can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT Python bindings not installed (pip install 'edgeface[tensorrt]' on an NVIDIA machine)"
    except OSError as e:  # the bindings are present but libnvinfer is not
        return f"TensorRT libraries not loadable: {str(e).splitlines()[0]}"
    gpu = gpu_facts()
    if "error" in gpu:
        return f"no usable NVIDIA GPU: {gpu['error']}"
    return None


def device_label(jetson_model: str | None, gpu_name: str | None, cpu_model: str, cores: int) -> str:
    """A short file-name-safe name of a machine as a latency sees it: Jetson model, else GPU, else CPU model and
    core count (``amd-epyc-2c``). Benchmark files and a manifest's measured latencies are keyed by it."""
    label = jetson_model or gpu_name or f"{cpu_model} {cores}c"
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def this_device_label() -> str:
    """:func:`device_label` of this machine from cheap sources (no torch): device tree, nvidia-smi, cpuinfo."""
    gpus = parse_nvidia_smi(_run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader"]))
    cpu = cpu_info()
    return device_label(jetson_facts().get("model"), gpus[0]["name"] if gpus else None, cpu["model"],
                        cpu["logical_cores"])


# -- Jetson -----------------------------------------------------------------------------------------------

def parse_tegra_release(text: str) -> dict:
    """``# R35 (release), REVISION: 4.1, GCID: ...`` -> L4T 35.4.1 and its JetPack release ("unknown" if new)."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not match:
        return {}
    major, revision = match.group(1), match.group(2)
    minor = revision.split(".")[0]
    return {"l4t": f"{major}.{revision}", "jetpack": JETPACK.get(f"{major}.{minor}", "unknown")}


def jetson_facts(root: str | Path = "/") -> dict:
    """{"l4t", "jetpack", "model"} of this Jetson, {} elsewhere: what a TensorRT build records and DLA requires."""
    facts = parse_tegra_release(_read(Path(root) / "etc/nv_tegra_release"))
    model = _read(Path(root) / "proc/device-tree/model").strip("\x00\n ")
    if facts and model:
        facts["model"] = model
    return facts


def _version(text: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> (10, 3, 0, 30); non-numeric parts end the tuple (``"7.0 DP"`` -> (7, 0))."""
    parts = []
    for piece in re.split(r"[.\s]", text.strip()):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def dla_unavailable(trt_version: str, jetson: dict) -> str | None:
    """Why TensorRT cannot build for the DLA here, or None when it can, as NVIDIA documents it:
    TensorRT 10.0-10.7 on Jetson (10.7 was the last 10.x with DLA; JetPack 6 ships 10.3), none in 11.0-11.4.0,
    and from 11.4.1 on Jetson AGX Orin with JetPack 7.2.2 or later (Jetson Thor has no DLA)."""
    if not jetson:
        return "DLA needs an NVIDIA Jetson (no /etc/nv_tegra_release here)"
    trt = _version(trt_version)
    model = jetson.get("model", "")
    if "thor" in model.lower():
        return f"{model} has no DLA"
    if trt[:1] == (10,):
        return None if trt[:2] <= (10, 7) else f"TensorRT {trt_version} has no DLA (10.7 was the last 10.x with it)"
    if trt < (11, 4, 1):
        return f"TensorRT {trt_version} has no DLA on Jetson (restored in 11.4.1 for AGX Orin on JetPack 7.2.2+)"
    if model and "agx orin" not in model.lower():
        return f"TensorRT {trt_version} supports DLA on Jetson AGX Orin only; this is {model}"
    jetpack = jetson.get("jetpack", "unknown")
    if jetpack != "unknown" and _version(jetpack.split("/")[-1]) < (7, 2, 2):
        return f"TensorRT {trt_version} supports DLA with JetPack 7.2.2 or later; this is JetPack {jetpack}"
    return None


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


# -- libraries --------------------------------------------------------------------------------------------

def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed version of each distribution in ``names``; absent ones are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
