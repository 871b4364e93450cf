"""Smoke test of job=benchmark on tiny shapes: it runs and writes the expected JSON keys."""

import json

from socseg_jax.configs import benchmark as benchmark_config

from socseg_jax.jobs import run_job


def test_benchmark_job_writes_json(tmp_path, capsys):
    config = benchmark_config.get_config("quick")
    config.model.features = (4, 8)
    config.model.encoder_dropout = (0.1, 0.1)
    config.model.decoder_dropout = (0.1,)
    config.benchmark.update(
        {
            "patch_size": 32, "repetitions": 2, "warmup": 1, "train_batch_size": 2,
            "train_steps": 1, "train_compute_dtypes": ("float32",), "inference_batch_size": 2,
            "inference_batches": 1, "sliding_image_shape": (48, 80), "sliding_strides": (16,),
            "sliding_batch_size": 4, "pipeline_images": 1, "pipeline_image_size": 64,
            "pipeline_batches": 2, "matmul_size": 64,
        }
    )
    run_job(config, str(tmp_path))

    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert {"machine", "settings", "results", "derived"} <= set(report)
    results = report["results"]
    expected = {"matmul_peak", "jax_train", "jax_inference", "jax_sliding_stride16", "pipeline"}
    assert set(results) == expected
    for result in results.values():
        assert {"median", "min", "max", "spread", "unit", "setup_seconds"} <= set(result)
        assert result["n"] == 2 and result["median"] > 0
    assert results["jax_train"]["flops_per_step"] > 0
    assert results["jax_inference"]["flops_per_patch"] > 0
    derived = report["derived"]
    assert derived["pipeline_ratio"] > 0
    assert 0 < derived["jax_train"]["fraction_of_peak"]
    assert "jax_sliding_stride16" in capsys.readouterr().out
