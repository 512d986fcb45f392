"""Device facts from recorded texts (x86 / Arm cpuinfo, Jetson release files, nvpmodel, nvidia-smi)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeface import device

X86_CPUINFO = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ORIN_CPUINFO = """processor	: 0
model name	: ARMv8 Processor rev 1 (v8l)
BogoMIPS	: 62.50
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41

processor	: 1
model name	: ARMv8 Processor rev 1 (v8l)
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
"""
TEGRA_RELEASE = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 2023\n"
JETSON_CLOCKS_ON = """SOC family:tegra234  Machine:Jetson AGX Orin
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
"""


def test_x86_isa_flags():
    info = device.parse_cpuinfo(X86_CPUINFO)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["logical_cores"] == 2
    isa = info["isa"]
    assert isa["avx2"] and isa["avx512"] and isa["avx512_vnni"] and isa["amx"] and isa["avx512_bf16"]
    assert not isa["avx_vnni"] and not isa["neon"]


def test_arm_features():
    info = device.parse_cpuinfo(ORIN_CPUINFO)
    assert info["logical_cores"] == 2
    assert info["isa"]["neon"] and info["isa"]["arm_dotprod"] and not info["isa"]["avx2"]


def test_meminfo():
    assert device.parse_meminfo("MemTotal:       32768000 kB\nMemFree: 1 kB\n") == 31.25


@pytest.mark.parametrize("major, revision, jetpack", [
    ("32", "7.1", "4.6.x"), ("34", "1.1", "5.0"), ("35", "1.0", "5.0.2"), ("35", "2.1", "5.1"),
    ("35", "3.1", "5.1.1"), ("35", "4.1", "5.1.2"), ("35", "5.0", "5.1.3"), ("35", "6.0", "5.1.4"),
    ("36", "2.0", "6.0 DP"), ("36", "3.0", "6.0"), ("36", "4.0", "6.1/6.2"), ("36", "4.3", "6.1/6.2"),
    ("38", "2.1", "7.0"), ("38", "4.0", "7.1"),
])
def test_the_one_jetpack_table(major, revision, jetpack):
    """Every L4T release either of the two former tables knew, plus JetPack 7 (Jetson Thor)."""
    release = f"# R{major} (release), REVISION: {revision}, GCID: 1, BOARD: generic, EABI: aarch64\n"
    assert device.parse_tegra_release(release) == {"l4t": f"{major}.{revision}", "jetpack": jetpack}


def test_tegra_release_edge_cases(tmp_path):
    assert device.parse_tegra_release(TEGRA_RELEASE) == {"l4t": "35.4.1", "jetpack": "5.1.2"}
    assert device.parse_tegra_release("# R99 (release), REVISION: 1.0")["jetpack"] == "unknown"
    assert device.parse_tegra_release("") == {}
    assert device.parse_tegra_release("garbage") == {}
    assert device.jetson_facts(tmp_path) == {}  # not a Jetson: TensorRT builds record no L4T
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(TEGRA_RELEASE)
    assert device.jetson_facts(tmp_path) == {"l4t": "35.4.1", "jetpack": "5.1.2"}


def test_vnni_decides_reduce_range():
    assert device.cpu_has_vnni(X86_CPUINFO, "x86_64")  # avx512_vnni (and AMX)
    avx2_only = X86_CPUINFO.replace("avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8", "")
    assert not device.cpu_has_vnni(avx2_only, "x86_64")
    assert device.cpu_has_vnni(avx2_only.replace("avx2", "avx2 avx_vnni"), "x86_64")
    assert device.cpu_has_vnni(ORIN_CPUINFO, "aarch64")  # not x86: no 7-bit workaround
    assert device.cpu_has_vnni("", "x86_64")  # unreadable cpuinfo: assume a modern CPU, as before


def test_library_versions_leave_out_what_is_missing():
    versions = device.library_versions(("numpy", "edgeface-no-such-distribution"))
    assert list(versions) == ["numpy"] and versions["numpy"][0].isdigit()


def test_device_facts_import_without_heavy_libraries():
    """The runtime's TensorRT runner reads GPU facts from here, so this must stay numpy-only."""
    code = ("import sys, edgeface.device, edgeface.runtime.runner_tensorrt; "
            "print(sorted(m for m in ('torch', 'tensorrt', 'pycuda', 'onnx', 'openvino', 'edgeface.convert') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_nvpmodel_and_jetson_clocks():
    assert device.parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n") == {"mode": "MAXN", "id": 0}
    assert device.parse_nvpmodel("NV Power Mode: 15W\n2\n") == {"mode": "15W", "id": 2}
    assert device.parse_jetson_clocks(JETSON_CLOCKS_ON) is True
    scaling = JETSON_CLOCKS_ON.replace("MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600",
                                       "MinFreq=115200 MaxFreq=2201600 CurrentFreq=729600", 1)
    assert device.parse_jetson_clocks(scaling) is False
    assert device.parse_jetson_clocks("") is None


def test_nvidia_smi():
    gpus = device.parse_nvidia_smi("NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n")
    assert gpus == [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory": "81559 MiB"}]


def test_jetson_info_from_a_recorded_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(TEGRA_RELEASE)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    info = device.jetson_info(tmp_path)
    assert info["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert info["l4t"] == "35.4.1" and info["jetpack"] == "5.1.2"
    assert device.jetson_info(tmp_path / "nowhere") is None


def test_governors_from_sysfs(tmp_path):
    for i, gov in enumerate(["performance", "powersave"]):
        d = tmp_path / f"cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
    assert device.cpu_governors(tmp_path) == ["performance", "powersave"]


