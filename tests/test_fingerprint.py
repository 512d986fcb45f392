"""Device fingerprint parsers (recorded x86 / Jetson texts) and the preflight warnings."""

from __future__ import annotations

from edgeface.bench import fingerprint as fp

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
    info = fp.parse_cpuinfo(X86_CPUINFO)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["logical_cores"] == 2
    isa = info["isa"]
    assert isa["avx2"] and isa["avx512"] and isa["avx512_vnni"] and isa["amx"] and isa["avx512_bf16"]
    assert not isa["avx_vnni"] and not isa["neon"]


def test_arm_features():
    info = fp.parse_cpuinfo(ORIN_CPUINFO)
    assert info["logical_cores"] == 2
    assert info["isa"]["neon"] and info["isa"]["arm_dotprod"] and not info["isa"]["avx2"]


def test_meminfo_and_tegra_release():
    assert fp.parse_meminfo("MemTotal:       32768000 kB\nMemFree: 1 kB\n") == 31.25
    assert fp.parse_tegra_release(TEGRA_RELEASE) == {"l4t": "35.4.1", "jetpack": "5.1.2"}
    assert fp.parse_tegra_release("# R99 (release), REVISION: 1.0")["jetpack"] == "unknown"
    assert fp.parse_tegra_release("") == {}


def test_nvpmodel_and_jetson_clocks():
    assert fp.parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n") == {"mode": "MAXN", "id": 0}
    assert fp.parse_nvpmodel("NV Power Mode: 15W\n2\n") == {"mode": "15W", "id": 2}
    assert fp.parse_jetson_clocks(JETSON_CLOCKS_ON) is True
    scaling = JETSON_CLOCKS_ON.replace("MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600",
                                       "MinFreq=115200 MaxFreq=2201600 CurrentFreq=729600", 1)
    assert fp.parse_jetson_clocks(scaling) is False
    assert fp.parse_jetson_clocks("") is None


def test_nvidia_smi():
    gpus = fp.parse_nvidia_smi("NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n")
    assert gpus == [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory": "81559 MiB"}]


def test_jetson_info_from_a_recorded_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(TEGRA_RELEASE)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    info = fp.jetson_info(tmp_path)
    assert info["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert info["l4t"] == "35.4.1" and info["jetpack"] == "5.1.2"
    assert fp.jetson_info(tmp_path / "nowhere") is None


def test_governors_from_sysfs(tmp_path):
    for i, gov in enumerate(["performance", "powersave"]):
        d = tmp_path / f"cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
    assert fp.cpu_governors(tmp_path) == ["performance", "powersave"]


def _fp(**over) -> dict:
    base = {"cpu": {"model": "x", "logical_cores": 4, "usable_cores": 4, "governors": ["performance"], "isa": {}},
            "gpu": None, "jetson": None, "load_average": [0.1, 0.1, 0.1]}
    base.update(over)
    return base


def test_preflight_warnings():
    assert fp.preflight_warnings(_fp()) == []
    busy = fp.preflight_warnings(_fp(load_average=[3.5, 2.0, 1.0]))
    assert len(busy) == 1 and "loading the CPU" in busy[0]
    cpu = _fp()["cpu"] | {"governors": ["powersave"]}
    assert "governor" in fp.preflight_warnings(_fp(cpu=cpu))[0]
    jetson = {"model": "Jetson", "nvpmodel": {"mode": "15W", "id": 2}, "jetson_clocks": False}
    warnings = fp.preflight_warnings(_fp(jetson=jetson))
    assert any("MAXN" in w for w in warnings) and any("jetson_clocks" in w for w in warnings)
    ok = {"model": "Jetson", "nvpmodel": {"mode": "MAXN", "id": 0}, "jetson_clocks": True}
    assert fp.preflight_warnings(_fp(jetson=ok)) == []


def test_fingerprint_of_this_machine():
    info = fp.fingerprint()
    assert info["cpu"]["logical_cores"] >= 1 and info["ram_gib"] > 0
    assert "numpy" in info["libraries"]
    assert len(info["load_average"]) == 3
    name = fp.device_name(info)
    assert name and name == name.lower() and " " not in name
    assert fp.device_name({"jetson": {"model": "NVIDIA Jetson AGX Orin"}, "gpu": None, "cpu": {}}) == \
        "nvidia-jetson-agx-orin"
