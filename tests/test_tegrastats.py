"""Jetson power parsing from recorded tegrastats lines (Orin JetPack 5/6, Xavier / Nano JetPack 4)."""

from __future__ import annotations

import pytest

from edgeface.bench.tegrastats import TegrastatsSampler, images_per_joule, parse_line, summarize

AGX_ORIN = (
    "RAM 2448/30536MB (lfb 6650x4MB) SWAP 0/15268MB (cached 0MB) CPU [0%@729,3%@729,0%@729,0%@729,0%@729,0%@729,"
    "0%@729,0%@729,off,off,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 61%@[305,305] VIC_FREQ 729 APE 174 CV0@-256C "
    "CPU@44.531C Tboard@32C SOC2@40.937C Tdiode@34.75C SOC0@41.562C CV1@-256C GPU@-256C tj@44.531C SOC1@40.812C "
    "CV2@-256C VDD_GPU_SOC 2370mW/2370mW VDD_CPU_CV 395mW/395mW VIN_SYS_5V0 2922mW/2922mW VDDQ_VDD2_1V8AO 503mW/503mW"
)
ORIN_NANO = (
    "11-23-2026 09:00:00 RAM 2150/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [2%@729,1%@729,0%@729,0%@729,"
    "1%@729,0%@729] GR3D_FREQ 12% cpu@47.5C soc2@45.312C soc0@46.062C gpu@46.031C tj@47.5C soc1@45.968C "
    "VDD_IN 4520mW/4410mW VDD_CPU_GPU_CV 596mW/580mW VDD_SOC 1433mW/1420mW"
)
AGX_XAVIER = (
    "RAM 2116/31920MB (lfb 7081x4MB) SWAP 0/15960MB (cached 0MB) CPU [1%@1190,0%@1190,0%@1190,0%@1190,off,off,"
    "off,off] EMC_FREQ 0% GR3D_FREQ 99% AO@30C GPU@30.5C Tdiode@33C PMIC@100C AUX@30C CPU@31C thermal@30.7C "
    "Tboard@31C GPU 1200/1100 CPU 311/311 SOC 1244/1244 CV 0/0 VDDRQ 155/155 SYS5V 1457/1457"
)
NANO = (
    "RAM 1520/3964MB (lfb 255x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [5%@1479,2%@1479,"
    "1%@1479,0%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 0%@921 APE 25 PLL@33C CPU@35.5C PMIC@100C GPU@34C AO@41C "
    "thermal@34.75C POM_5V_IN 1990/1990 POM_5V_GPU 40/40 POM_5V_CPU 398/398"
)


def test_orin_input_rail_is_the_board_power():
    s = parse_line(ORIN_NANO)
    assert s["power_mw"] == 4520  # the instantaneous value, not the running average
    assert s["rails_mw"] == {"VDD_IN": 4520, "VDD_CPU_GPU_CV": 596, "VDD_SOC": 1433}
    assert s["ram_used_mb"] == 2150 and s["ram_total_mb"] == 7620
    assert s["gpu_load_pct"] == 12
    assert s["cpu_load_pct"] == [2, 1, 0, 0, 1, 0]
    assert s["temps_c"]["tj"] == 47.5


def test_agx_orin_without_input_rail_sums_rails():
    s = parse_line(AGX_ORIN)
    assert s["power_mw"] == 2370 + 395 + 2922 + 503
    assert s["gpu_load_pct"] == 61
    assert "RAM" not in s["rails_mw"] and "SWAP" not in s["rails_mw"]


def test_xavier_format_without_mw_units():
    s = parse_line(AGX_XAVIER)
    assert s["rails_mw"] == {"GPU": 1200, "CPU": 311, "SOC": 1244, "CV": 0, "VDDRQ": 155, "SYS5V": 1457}
    assert s["power_mw"] == 1200 + 311 + 1244 + 155 + 1457
    assert s["gpu_load_pct"] == 99


def test_nano_pom_input_rail_and_iram_ignored():
    s = parse_line(NANO)
    assert s["power_mw"] == 1990
    assert "IRAM" not in s["rails_mw"]


def test_garbage_line_is_none():
    assert parse_line("tegrastats: command not found") is None


def test_summary_mean_power_and_images_per_joule():
    second = ORIN_NANO.replace("VDD_IN 4520mW", "VDD_IN 5480mW")
    summary = summarize([ORIN_NANO, "noise", second])
    assert summary["samples"] == 2
    assert summary["mean_power_w"] == pytest.approx(5.0)
    assert summary["peak_power_w"] == pytest.approx(5.48)
    assert summary["rails_w"]["VDD_SOC"] == pytest.approx(1.433)
    assert images_per_joule(250.0, summary["mean_power_w"]) == pytest.approx(50.0)
    assert images_per_joule(250.0, None) is None
    assert summarize([])["mean_power_w"] is None


def test_sampler_off_jetson_records_nothing():
    sampler = TegrastatsSampler(command="tegrastats-not-installed-here")
    with sampler:
        pass
    assert not sampler.available and sampler.summary() is None


def test_sampler_reads_a_live_process(tmp_path):
    """A stand-in tegrastats that prints recorded lines exercises the real subprocess plumbing."""
    fake = tmp_path / "tegrastats"
    fake.write_text(f"#!/bin/sh\nwhile true; do echo '{ORIN_NANO}'; sleep 0.05; done\n")
    fake.chmod(0o755)
    import time

    with TegrastatsSampler(command=str(fake)) as sampler:
        time.sleep(0.4)
    summary = sampler.summary()
    assert summary["samples"] >= 2
    assert summary["mean_power_w"] == pytest.approx(4.52)
