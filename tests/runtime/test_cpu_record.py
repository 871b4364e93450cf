"""The CPU record that goes with every benchmark figure."""

from pathlib import Path

from socseg_jax.runtime import cpu_record


def test_cpu_info_reads_the_first_processor_of_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 1\n"
        "model name\t: AMD EPYC 7551 32-Core Processor\nstepping\t: 2\n"
        "flags\t\t: fpu sse4_2 fma avx2 hypervisor\n\n"
        "processor\t: 1\nmodel name\t: something else\nflags\t\t: avx512f\n"
    )
    real_path = Path

    def fake_path(p, *rest):
        return cpuinfo if str(p) == "/proc/cpuinfo" else real_path(p, *rest)

    monkeypatch.setattr(cpu_record, "Path", fake_path)
    monkeypatch.setattr(cpu_record.os, "getloadavg", lambda: (1.234, 0.5, 0.25))
    info = cpu_record.cpu_info()
    assert info["model_name"] == "AMD EPYC 7551 32-Core Processor"
    assert info["family_model_stepping"] == ["23", "1", "2"]
    assert info["hypervisor"] is True and info["vendor"] == "AuthenticAMD"
    assert info["load_average"] == [1.23, 0.5, 0.25]
    assert info["isa"]["avx2"] and not info["isa"]["avx512f"] and not info["isa"]["amx_bf16"]
    assert cpu_record.cpu_summary() == "AMD EPYC 7551 32-Core Processor (avx2)"


def test_cpu_info_survives_a_machine_without_cpuinfo(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_record, "Path", lambda p, *rest: tmp_path / "missing")
    monkeypatch.setattr(cpu_record.platform, "processor", lambda: "")
    monkeypatch.setattr(cpu_record, "usable_cores", lambda: 3)
    info = cpu_record.cpu_info()
    assert info["model_name"] == "unknown" and not any(info["isa"].values())
    assert info["cpus"] == 3 and cpu_record.cpu_summary() == "unknown"
