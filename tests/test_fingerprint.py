"""The benchmark fingerprint of this machine, its device label and the preflight warnings."""

from __future__ import annotations

from edgeface.bench import fingerprint as fp


def _fp(**over) -> dict:
    base = {"cpu": {"model": "x", "logical_cores": 4, "usable_cores": 4, "governors": ["performance"], "isa": {}},
            "gpu": None, "jetson": None, "load_average": [0.1, 0.1, 0.1]}
    base.update(over)
    return base


def test_preflight_warnings():
    assert fp.preflight_warnings(_fp()) == []
    busy = fp.preflight_warnings(_fp(load_average=[3.5, 2.0, 1.0]))
    assert len(busy) == 1 and "loading the CPU" in busy[0]
    assert fp.preflight_warnings(_fp(load_average=[1.9, 2.0, 1.0])) == []  # half a process per core is quiet
    assert fp.machine_busy(2.1, 4) and not fp.machine_busy(1.9, 4) and fp.machine_busy(0.6, 0)
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
