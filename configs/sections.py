"""Shared config sections, so every job uses the same key names and defaults."""

from ml_collections import ConfigDict

from data_prep.labels.thresholds import DEFAULT_THRESHOLDS
from data_prep.readers.images import MAX_IMAGE_BYTES
from data_prep.registration.gate import MIN_REGISTRATION_QUALITY
from socseg_jax.models import study


def model_config() -> ConfigDict:
    """The study's U-Net: 16-32-64-128-256 filters, its dropout rates, 1 SEM channel, 4 phases."""
    return ConfigDict(
        {
            "features": study.FEATURES,
            "encoder_dropout": study.ENCODER_DROPOUT,
            "decoder_dropout": study.DECODER_DROPOUT,
            "in_channels": study.IN_CHANNELS,
            "num_classes": study.NUM_CLASSES,
            "compute_dtype": study.COMPUTE_DTYPE,
        }
    )


def prepare_config() -> ConfigDict:
    """Raw SEM + EDS → labels → patches → TFDS shards (data_prep.prepare reads these keys)."""
    return ConfigDict(
        {
            "patch_size": 256,
            "stride": 128,
            "val_fraction": 0.15,
            "test_fraction": 0.15,
            "min_registration_quality": MIN_REGISTRATION_QUALITY,  # see above
            # A sample far below its run, under median - max(spreads x 1.4826 MAD, margin)
            # (correct ones lie <= 0.041 below the median, wrong fields >= 19 spreads and
            # 0.4 below): refuse (its outputs deleted) or warn.
            "registration_outliers": "refuse",
            "registration_outlier_spreads": 6.0,
            "registration_outlier_margin": 0.06,
            "manifest": "",  # CSV: sample,sem[,eds,labels,scribbles,pixel_size_nm,sem2]
            "data_bar": "auto",  # SEM information bar: auto, none or a height in rows
            # overlay: drawn over the scan (Zeiss; EDS covers the bar rows), appended: below
            # it (FEI/Thermo; EDS covers the image above), auto: both tried, better kept.
            "data_bar_convention": "auto",
            # EDS pixel size when the files lack it (H5OINA step, TIFF resolution tags);
            # 0 = unknown: a sub-area's scale is searched
            "eds_step_nm": 0.0,
            "element_pattern": "",  # regex for EDS map names; group 'el' = element
            "labels_file_encoding": "auto",  # labels.tif files: auto, ids, grey, ilastik
            "registration": "similarity",  # translation, similarity or affine
            # Stage (b) at SEM resolution: mean_field (EDS prior x SEM likelihood), forest,
            # none. A sample with scribbles.png is labelled from its scribbles instead.
            "refine_labels": "mean_field",
            # Stage (c) after mean_field: ICM sweeps against a per-sample forward model of the
            # EDS maps (data_prep/labels/eds_model.py); 0 = off.
            "eds_model_sweeps": 16,
            "label_thresholds": dict(DEFAULT_THRESHOLDS),  # data_prep/labels/thresholds.py
            "sampler": "grid",  # grid or random (IoU-capped, the study's)
            "patches_per_image": 0,  # random sampler: 0 = as many as the grid
            "max_patch_iou": 0.25,
            "augment_to": 0,  # train records after offline augmentation (0 = none)
            "image_dtype": "uint8",  # uint8 or uint16 records
            "channels": 1,  # SEM detector images per sample: sem.tif, sem2.tif, ...
            "n_jobs": 2,  # CPU threads of the forest refinement
            "max_image_bytes": MAX_IMAGE_BYTES,  # larger declared images are refused unread
            # SEM normalisation: percentile stretch, then CLAHE over tiles of this many px
            # when > 0 (0 = off). Recorded with the dataset and the checkpoints, so segment
            # applies the same (core/intensity.py).
            "local_contrast_px": 0,
        }
    )


# The training keys the optimizer reads (socseg_jax/training/optim.py).
OPTIMIZER_KEYS = ("learning_rate", "lr_schedule", "warmup_steps", "weight_decay",
                  "grad_clip_norm", "grad_accum_steps", "num_train_steps")


def train_config(config: ConfigDict) -> None:
    """Adds the training keys (flat, as in docs/design.md) to `config`: the study's recipe."""
    config.batch_size = 32  # global, split over every device of every process
    config.num_train_steps = 3000
    config.num_epochs = 0  # > 0: train for this many epochs instead of num_train_steps
    config.learning_rate = 1e-3
    config.lr_schedule = "constant"  # constant | cosine | warmup_cosine
    config.warmup_steps = 0
    config.weight_decay = 0.0  # > 0: AdamW
    config.grad_clip_norm = 0.0  # > 0: clip the global gradient norm
    config.grad_accum_steps = 1
    config.loss = "cross_entropy"  # cross_entropy | weighted_cross_entropy | cross_entropy_dice
    config.class_weights = ()  # for weighted_cross_entropy; empty: inverse train frequencies
    config.label_smoothing = 0.0
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3  # latest checkpoints kept (plus the best by validation mIoU)
    config.keep_best = 1
    config.log_every_steps = 50
    config.eval_every_steps = 500  # validation mean IoU; 0 = only at the end
    config.early_stopping_patience = 0  # evaluations without improvement; 0 = never stop
    config.shift_reference_images = 8  # training images whose features segment compares to
    config.predict = predict_config()  # how the shift reference's images are predicted
    config.augment = True  # D4 flips and rotations
    # Acquisition changes (training/acquisition.py); a setting of 0 switches that part off.
    # Chosen by benchmarks/generalisation.py; gamma, contrast and brightness are off (the
    # percentile normalisation removes gain and offset). Why: RESULTS.md, "Defaults".
    config.acquisition = ConfigDict(
        {"enabled": True, "apply_prob": 1.0, "scale": 0.2, "blur_sigma": 2.3, "blur_prob": 0.3,
         "gamma": 0.0, "contrast": 0.0, "brightness": 0.0, "gradient": 0.12, "noise_sigma": 0.09}
    )
    config.seed = 0
    config.distributed = ConfigDict(
        {"coordinator_address": "", "num_processes": 0, "process_id": -1, "auto": False}
    )


def predict_config() -> ConfigDict:
    """Sliding-window inference with large windows: the net is fully convolutional, so
    1024-px windows overlapping by 128 px compute each pixel about 1.3 times (the study's
    256/stride 64: 11-16 times) and give the same labels (benchmarks/window_size.py; RESULTS.md,
    "Defaults"). Smaller images get a window of their size. The study's setting:
    patch_size=256, stride=64, blending='uniform'."""
    return ConfigDict(
        {
            "patch_size": 1024,
            "stride": 896,
            "batch_size": 8,
            "blending": "gaussian",  # or 'uniform' (the study's plain average)
            "tta": "none",  # none | flips (4 passes) | d4 (8 passes)
            "pad_mode": "reflect",
            "mc_samples": 0,  # > 0: Monte-Carlo dropout passes per model
            "seed": 0,  # seeds MC dropout
            "max_band_pixels": 1 << 24,  # bounds memory: larger images go in row bands
        }
    )


def segment_options(config: ConfigDict) -> None:
    """Adds what `segment` reads and writes per image to `config` (flat keys, docs/design.md)."""
    config.label_encoding = "ids"  # written label maps: 'ids' (0..3) or 'grey' (0/85/170/255)
    config.overwrite = False  # False: skip images whose outputs are complete (resume)
    config.save_probabilities = False  # <stem>_proba.tif, float16 (K, H, W)
    config.save_uncertainty = False  # <stem>_entropy.tif and <stem>_maxprob.tif, float16
    # SEM normalisation: 'auto' = as the checkpoint was trained (its normalisation.json:
    # percentile stretch, optional local contrast), 'percentile', or 'keras_l2_rows' (the
    # study's Keras models).
    config.preprocess = "auto"
    config.data_bar = "auto"  # SEM data bar: detected (auto), none, or its height in rows
    config.pixel_size_nm = 0.0  # used when a file has no pixel-size metadata; 0 = unknown
    config.overlay_max_size = 4096  # overlays of larger images are subsampled
    config.tiff_compression = "zlib"  # '' for uncompressed TIFFs
    config.num_workers = 2  # CPU threads decoding the next images
    config.prefetch = 2  # images decoded ahead of the predictor
    config.max_image_bytes = MAX_IMAGE_BYTES  # larger declared images are refused unread
    # An image whose features (inference/shift.py) lie this many (small-sample corrected)
    # spreads from the training images' gets a warning in summary.csv and on its overlay: a
    # 3-sigma event for an in-domain image (set by benchmarks/generalisation.py; RESULTS.md,
    # "Defaults").
    config.shift_threshold = 3.0
    # An image whose phase fraction lies this many percentage points outside the range of the
    # model's reference images (or lacks a phase all of them had) gets a warning
    # (socseg_jax/inference/composition.py).
    config.composition_margin_pct = 3.0
    # Grey-level calibration (socseg_jax/inference/levels.py): an image whose confident class
    # grey levels lie a gamma of more than ~10 % from the training images' is predicted again
    # at the gamma that aligns them; needs the model's shift reference; summary.csv's
    # level_gamma says what was applied.
    config.calibrate_levels = True
    # Class calibration (socseg_jax/inference/class_bias.py): the per-phase offsets fitted on
    # the model's labelled reference images when training ended take out its lean towards the
    # most frequent phase; needs the model's shift reference (one model, not an ensemble).
    config.calibrate_classes = True
