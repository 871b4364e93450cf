"""The core package does not import napari or Qt (the plugin is an extra)."""

import subprocess
import sys


def test_core_imports_neither_napari_nor_qt():
    code = ("import sys, socseg_jax, socseg_jax.cli, socseg_jax.jobs.segment, "
            "socseg_jax.jobs.analyze, data_prep.prepare.run; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'vispy', 'magicgui'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
