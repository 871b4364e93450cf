"""launch.py: bad input to each job ends in one clear line and exit status 2, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import run_side_by_side

ROOT = Path(__file__).resolve().parents[1]


def launch_all(*runs: list[str]) -> list[subprocess.CompletedProcess]:
    """``python launch.py ARGS`` for each list of ARGS, the processes side by side."""
    return run_side_by_side([[sys.executable, "launch.py", *args] for args in runs], cwd=ROOT)


def launch(*args: str) -> subprocess.CompletedProcess:
    return launch_all(list(args))[0]


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_job(tmp_path):
    result = launch("--config", "configs/default.py", "--config.job=bogus", f"--workdir={tmp_path}")
    assert_one_line_error(result, "unknown job 'bogus'", "quickstart")


@pytest.mark.parametrize(
    "args,needles",
    [
        (
            ["configs/prepare.py", "--config.raw_dir=/nonexistent/raw", "--config.output_dir=OUT"],
            ["/nonexistent/raw"],
        ),
        (["configs/prepare.py", "--config.output_dir=OUT"], ["config.raw_dir is required"]),
        (["configs/default.py", "--config.dataset_dir=/nonexistent/data"], ["/nonexistent/data"]),
        (
            [
                "configs/segment.py",
                "--config.input=/nonexistent/images",
                "--config.output_dir=OUT",
                "--config.checkpoint=/nonexistent/run",
            ],
            ["/nonexistent/images"],
        ),
        (
            [
                "configs/evaluate.py",
                "--config.checkpoint=/nonexistent/run",
                "--config.dataset_dir=DATA",
            ],
            ["/nonexistent/run"],
        ),
    ],
)
def test_missing_inputs(tmp_path, args, needles):
    args = [a.replace("OUT", str(tmp_path / "out")).replace("DATA", str(tmp_path)) for a in args]
    result = launch("--config", *args, f"--workdir={tmp_path / 'work'}")
    assert_one_line_error(result, *needles)


def test_wrong_config_value(tiny_dataset, tmp_path):
    result = launch(
        "--config",
        "configs/default.py",
        f"--config.dataset_dir={tiny_dataset}",
        "--config.batch_size=0",
        f"--workdir={tmp_path}",
    )
    assert_one_line_error(result, "config.batch_size must be a whole number >= 1, got 0")


SEGMENT_KEYS = ("input", "output_dir", "checkpoint")


@pytest.mark.parametrize(
    "config,override,keys,needles",
    [
        ("socseg:quickstart", "--config.batch_size=-3", (), ["config.batch_size", "got -3"]),
        ("configs/segment.py", "--config.predict.tta=bogus", SEGMENT_KEYS,
         ["config.predict.tta must be one of", "'bogus'"]),
        ("configs/prepare.py", "--config.prepare.val_fraction=1.5", ("raw_dir", "output_dir"),
         ["config.prepare.val_fraction must be between 0 and 1"]),
        ("configs/segment.py", "--config.predict.ttaa=d4", SEGMENT_KEYS,
         ["--config.predict.ttaa: no such key", "did you mean predict.tta"]),
    ],
)
def test_config_checked_before_anything_is_created_or_loaded(tmp_path, config, override, keys,
                                                             needles):
    """Checked first: the checkpoint and input do not exist, no folder is created."""
    paths = [f"--config.{k}={tmp_path / k}" for k in keys]
    result = launch("--config", config, override, f"--workdir={tmp_path / 'work'}", *paths)
    assert_one_line_error(result, *needles)
    assert not list(tmp_path.iterdir())


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path):
    import numpy as np
    import tifffile

    (tmp_path / "imgs").mkdir()
    tifffile.imwrite(tmp_path / "imgs" / "a.tif", np.zeros((40, 40), np.uint8))
    (tmp_path / "file").write_text("a file, not a folder")
    result = launch("--config", "configs/segment.py", f"--config.input={tmp_path / 'imgs'}",
                    f"--config.output_dir={tmp_path / 'file' / 'out'}",
                    "--config.checkpoint=/nonexistent/run")
    assert_one_line_error(result, "cannot create the output folder", "file/out")


def test_segment_of_a_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    result = launch(
        "--config",
        "configs/segment.py",
        f"--config.input={tmp_path}",
        f"--config.output_dir={tmp_path / 'out'}",
        "--config.checkpoint=/nonexistent/run",
    )
    assert_one_line_error(result, "no images")


def test_bad_config_file_and_override(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    missing, syntax, value, key = launch_all(
        ["--config", str(tmp_path / "missing.py")],
        ["--config", str(broken)],
        ["--config", "configs/default.py", "--config.batch_size=abc"],
        ["--config", "configs/default.py", "--config.no_such_key=1"],
    )
    assert_one_line_error(missing, "No such file")
    assert_one_line_error(syntax, "broken.py, line 1")
    assert_one_line_error(value, "batch_size")
    assert_one_line_error(key, "no_such_key")


def test_checkpoint_of_another_program_and_bad_manifest(tmp_path):
    import numpy as np
    import tifffile

    (tmp_path / "imgs").mkdir()
    tifffile.imwrite(tmp_path / "imgs" / "a.tif", np.zeros((40, 40), np.uint8))
    (tmp_path / "other" / "checkpoints" / "5" / "state").mkdir(parents=True)  # no model_config
    manifest = tmp_path / "samples.csv"
    manifest.write_text("name,image\ns1,a.tif\n")
    checkpoint, prepare, key = launch_all(
        ["--config", "configs/segment.py", f"--config.input={tmp_path / 'imgs'}",
         f"--config.output_dir={tmp_path / 'out'}", f"--config.checkpoint={tmp_path / 'other'}"],
        ["--config", "configs/prepare.py", f"--config.raw_dir={tmp_path}",
         f"--config.output_dir={tmp_path / 'prep'}", f"--config.prepare.manifest={manifest}"],
        ["--config", "configs/segment.py", "--config.max_image_byte=10"],
    )
    assert_one_line_error(checkpoint, "checkpoints/5: not a socseg_jax U-Net checkpoint")
    assert_one_line_error(prepare, "samples.csv", "'sample' and 'sem'")
    assert_one_line_error(key, "max_image_byte")


def test_help_names_every_job_and_preset():
    from socseg_jax import cli
    from socseg_jax.jobs import JOBS

    for args in (["--help"], ["-h"], []):
        result = launch(*args)
        assert result.returncode == 0, result.stderr
        for name in JOBS:
            assert f"\n  {name} " in result.stdout
        for preset in cli.presets():
            assert f"socseg:{preset}" in result.stdout
        assert "socseg --config socseg:quickstart --workdir" in result.stdout


def test_every_key_of_every_preset_is_described():
    from socseg_jax.configs.descriptions import describe

    from socseg_jax import cli

    for preset in cli.presets():
        config = cli.load_config(cli.preset_path(f"socseg:{preset}"))
        missing = [k for k, _ in cli.flat_items(config) if not describe(k, config.job)]
        assert not missing, f"socseg:{preset} keys without a description: {missing}"


def test_show_config_lists_values_and_meanings_and_runs_nothing(tmp_path):
    result = launch("--config", "socseg:segment", "--config.predict.tta=flips", "--show_config")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    tta = next(ln for ln in lines if ln.startswith("predict.tta = "))
    assert "'flips'" in tta and "# test-time augmentation" in tta
    assert any(ln.startswith("job = 'segment'") for ln in lines)


def test_unknown_key_and_preset_suggest_the_nearest():
    result = launch("--config", "socseg:segment", "--config.predict.tt=flips")
    assert_one_line_error(result, "--config.predict.tt", "did you mean predict.tta")
    result = launch("--config", "socseg:segmnt")
    assert_one_line_error(result, "socseg:segmnt", "did you mean segment")
