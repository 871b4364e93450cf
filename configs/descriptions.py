"""One line per config key: what it means and the values it takes (`socseg --show_config`).

Keys are dotted paths. A key is looked up as ``JOB:path`` first (where one name means
different things in two jobs), then as its path, then with its leading sections dropped one
at a time (``segment.predict.tta`` -> ``predict.tta`` -> ``tta``), so a section shared by
several jobs is described once. Defaults live in the config files, measured figures in
benchmarks/RESULTS.md; tests/test_cli.py checks that every key of every preset has a line.
"""

DESCRIPTIONS: dict[str, str] = {
    # what runs, where
    "job": "the job to run: prepare, train, evaluate, segment, analyze, quickstart, benchmark",
    "raw_dir": "folder of raw samples: <sample>/sem.tif, <sample>/eds/<El>*.tif, labels.tif",
    "output_dir": "folder the job writes its outputs to (created when missing)",
    "dataset_dir": "a prepare output folder (the TFDS data dir) to train or evaluate on",
    "input": "images or label maps: a folder (recursive), a glob, a .txt list or one file",
    "checkpoint": "train workdir(s), Orbax step folder(s) or Keras .h5, comma-separated = ensemble",
    "split": "the prepared split to evaluate: train, validation or test",
    "truth_dir": "reference label maps named like the input images (evaluate on full images)",
    "seed": "seeds every random choice of the job (data order, dropout, splits)",
    "shard_index": "this host's share of the archive, 0..num_shards-1 (-1: jax.process_index())",
    "num_shards": "hosts the archive is split over (0: jax.process_count())",
    "analyze": "also analyse each segmented image's microstructure into output_dir/analysis",
    # the model
    "model.features": "filters per U-Net level, the last the bottleneck (the study: 16..256)",
    "model.encoder_dropout": "dropout rate per encoder level",
    "model.decoder_dropout": "dropout rate per decoder level, deepest first",
    "model.in_channels": "input channels: SEM detector images per sample (prepare.channels)",
    "model.num_classes": "output classes: pore, NiO, Ni, YSZ",
    "model.compute_dtype": "arithmetic precision: float32 or bfloat16 (parameters stay float32)",
    # training
    "batch_size": "global training batch, split over every device of every process",
    "num_train_steps": "optimizer steps to train for",
    "num_epochs": "> 0: train this many passes over the training records instead",
    "learning_rate": "peak learning rate of Adam (AdamW when weight_decay > 0)",
    "lr_schedule": "constant, cosine or warmup_cosine",
    "warmup_steps": "steps of linear warmup (warmup_cosine)",
    "weight_decay": "> 0: AdamW with this decoupled weight decay",
    "grad_clip_norm": "> 0: clip the global gradient norm to this",
    "grad_accum_steps": "batches whose gradients are summed per optimizer step",
    "loss": "cross_entropy (the study), weighted_cross_entropy or cross_entropy_dice",
    "class_weights": "per-class weights of weighted_cross_entropy (empty: inverse frequencies)",
    "label_smoothing": "label smoothing of the cross-entropy, 0..1",
    "checkpoint_every_steps": "steps between Orbax checkpoints (a killed run resumes from one)",
    "keep_checkpoints": "latest checkpoints kept",
    "keep_best": "best checkpoints by validation mean IoU kept besides",
    "log_every_steps": "steps between console/metrics.jsonl/TensorBoard lines",
    "eval_every_steps": "steps between validation scores (0: only at the end)",
    "early_stopping_patience": "evaluations without improvement before stopping (0: never)",
    "shift_reference_images": "training images whose features segment compares archives to",
    "augment": "D4 flips and rotations of the training patches",
    "acquisition.enabled": "acquisition augmentation (zoom, probe blur, gradient, noise)",
    "acquisition.apply_prob": "share of training patches augmented at all",
    "acquisition.scale": "zoom range, +-fraction (labels resampled with the image)",
    "acquisition.blur_sigma": "largest probe blur (Gaussian sigma, px); 0 = off",
    "acquisition.blur_prob": "share of augmented patches that are blurred",
    "acquisition.gamma": "gamma range, +-fraction; 0 = off",
    "acquisition.contrast": "contrast range, +-fraction; 0 = off",
    "acquisition.brightness": "brightness range, +-fraction of the range; 0 = off",
    "acquisition.gradient": "largest slow brightness ramp across a patch of 128 px or more "
                            "(proportionally less on smaller ones); 0 = off",
    "acquisition.noise_sigma": "largest added noise (std, normalised grey); 0 = off",
    "distributed.coordinator_address": "host:port of process 0 for multi-host runs ('' = one host)",
    "distributed.num_processes": "processes of a multi-host run (0: from the environment)",
    "distributed.process_id": "this process's index (-1: from the environment)",
    "distributed.auto": "let JAX find the cluster itself (Cloud TPU, SLURM, Open MPI)",
    # prediction
    "predict.patch_size": "sliding-window side (px); smaller images get a window of their size",
    "predict.stride": "step between windows (px); patch_size - stride is the overlap",
    "predict.batch_size": "windows per model call",
    "predict.blending": "averaging of overlapping windows: gaussian or uniform (the study)",
    "predict.tta": "test-time augmentation: none, flips (4 passes) or d4 (8 passes)",
    "predict.pad_mode": "padding at the image border: reflect, symmetric, edge or constant",
    "predict.mc_samples": "> 0: Monte-Carlo dropout passes per model",
    "predict.seed": "seeds the Monte-Carlo dropout passes",
    "predict.max_band_pixels": "larger images are predicted in row bands (bounds memory)",
    # segment
    "label_encoding": "written label maps: ids (0..3) or grey (the study's 0/85/170/255)",
    "overwrite": "redo images whose outputs exist (False: resume, skipping them)",
    "save_probabilities": "also write <stem>_proba.tif (float16, one page per class)",
    "save_uncertainty": "also write <stem>_entropy.tif and <stem>_maxprob.tif (float16)",
    "preprocess": "SEM normalisation: auto (as trained), percentile or keras_l2_rows",
    "data_bar": "SEM information bar: auto (detected), none, or its height in rows",
    "pixel_size_nm": "pixel size for files without metadata (0: unknown, results in px)",
    "overlay_max_size": "overlays of larger images are subsampled to this side (px)",
    "tiff_compression": "compression of written TIFFs: zlib, or '' for none",
    "num_workers": "CPU threads decoding the next images",
    "prefetch": "images decoded ahead of the predictor",
    "max_image_bytes": "images whose header declares more decoded bytes are refused unread",
    "shift_threshold": "shift score (spreads from the training images) above which to warn",
    "calibrate_levels": "predict again at the gamma that aligns the class grey levels",
    "calibrate_classes": "apply the per-phase offsets fitted on the model's labelled images",
    "composition_margin_pct": "warn when a phase fraction lies this many pp outside the "
    "training images' range",
    # analyze (its own job, and segment's analysis section)
    "analyze:label_encoding": "label maps read: auto, ids (0..3, 255 = not sample) or grey",
    "analysis.label_encoding": "label maps read: auto, ids (0..3, 255 = not sample) or grey",
    "groups_csv": "CSV path,group,time_min,... naming each image's group (wins over the regex)",
    "group_regex": "auto (times as names give them: t000, 10min, 2h, ox30) or a regex with "
                   "named groups (group, time_min) searched in each relative path; '' = none",
    "direction": "axis of percolation, active TPB and tortuosity: both, y or x",
    "connectivity": "cluster connectivity: 4 (shared edges, as diffusion needs) or 8",
    "block_size_px": "block side (px) for the standard error of the area fractions",
    "tortuosity": "solve the diffusion problem for tortuosity and D_eff",
    "pictures": "write per-image and series pictures (and show them in report.html)",
    # prepare
    "prepare.patch_size": "side (px) of the training patches cut from each image",
    "prepare.stride": "step (px) between grid patches",
    "prepare.val_fraction": "share of the images (not patches) in the validation split",
    "prepare.test_fraction": "share of the images in the test split",
    "prepare.min_registration_quality": "samples whose EDS registration scores lower are refused",
    "prepare.registration_outliers": "a sample registered far below the run's: refuse or warn",
    "prepare.registration_outlier_spreads": "robust spreads below the run's median that is far",
    "prepare.registration_outlier_margin": "smallest quality drop below the median that is far",
    "prepare.manifest": "CSV sample,sem[,eds,labels,scribbles,pixel_size_nm,sem2] naming files",
    "prepare.data_bar": "SEM information bar: auto (detected), none, or its height in rows",
    "prepare.data_bar_convention": "bar drawn over the scan (overlay, Zeiss), appended, or auto",
    "prepare.eds_step_nm": "EDS pixel size when the files lack it (0: unknown, searched)",
    "prepare.element_pattern": "regex for EDS map file names, group 'el' = element symbol",
    "prepare.labels_file_encoding": "labels.tif values: auto, ids, grey or ilastik (1..4)",
    "prepare.registration": "EDS-to-SEM transform: translation, similarity or affine",
    "prepare.refine_labels": "label refinement at SEM resolution: mean_field, forest or none",
    "prepare.eds_model_sweeps": "sweeps of stage (c), the forward model of the maps (0: off)",
    "prepare.label_thresholds.nio": "O share of the Ni signal above which Ni reads as NiO",
    "prepare.label_thresholds.ysz": "(Zr + Y) share of the cation signal above which it is YSZ",
    "prepare.label_thresholds.sem_weight": "SEM share of the pore vote (raise for coarse EDS)",
    "prepare.sampler": "patch sampler: grid, or random (the study's IoU-capped sampler)",
    "prepare.patches_per_image": "random sampler: patches per image (0: as many as the grid)",
    "prepare.max_patch_iou": "random sampler: largest overlap (IoU) between two patches",
    "prepare.augment_to": "training records after offline augmentation (0: none)",
    "prepare.image_dtype": "patch records: uint8 or uint16",
    "prepare.channels": "SEM detector images per sample: sem.tif, sem2.tif, ...",
    "prepare.n_jobs": "CPU threads of the forest refinement",
    "prepare.max_image_bytes": "images whose header declares more decoded bytes are refused",
    "prepare.local_contrast_px": "CLAHE tile side (px) after the percentile stretch (0: off)",
    # quickstart
    "synthetic.num_samples": "simulated samples (SEM + EDS + true phases)",
    "synthetic.shape": "simulated image size (rows, columns)",
    "synthetic.oxidation_times": "oxidation times (min) the samples cycle through",
    # benchmark
    "benchmark.patch_size": "patch side of the timed training and inference",
    "benchmark.repetitions": "timed runs per figure (median and spread reported)",
    "benchmark.warmup": "untimed runs per figure, after compilation",
    "benchmark.train_batch_size": "batch of the timed training steps",
    "benchmark.train_steps": "training steps per repetition",
    "benchmark.train_compute_dtypes": "compute dtypes the training is timed in",
    "benchmark.inference_batch_size": "patches per timed inference call",
    "benchmark.inference_batches": "inference calls per repetition",
    "benchmark.sliding_image_shape": "image size of the timed sliding window",
    "benchmark.sliding_strides": "window strides timed",
    "benchmark.sliding_batch_size": "windows per call of the timed sliding window",
    "benchmark.pipeline_images": "prepared images behind the timed input pipeline",
    "benchmark.pipeline_image_size": "side of those images (px)",
    "benchmark.pipeline_batches": "batches read per repetition",
    "benchmark.matmul_size": "side of the matmul that measures the device's peak",
}


def describe(path: str, job: str = "") -> str:
    """The one-line description of a dotted config key ('' when none is written)."""
    parts = path.split(".")
    for start in range(len(parts)):
        key = ".".join(parts[start:])
        for candidate in (f"{job}:{key}", key):
            if candidate in DESCRIPTIONS:
                return DESCRIPTIONS[candidate]
    return ""
