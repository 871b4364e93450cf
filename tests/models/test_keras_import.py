"""The study's Keras U-Net (built with Keras 3 on the JAX backend) imports into the Flax U-Net."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from socseg_jax.models.keras_import import keras_normalize, load_keras_model  # noqa: E402

FEATURES, ENCODER_DROPOUT, DECODER_DROPOUT = (4, 8, 16), (0.1, 0.1, 0.2), (0.2, 0.1)


def study_unet(size: int = 32, num_classes: int = 4):
    """The study's Keras U-Net (bnsreenu style), narrower: conv-dropout-conv per level."""
    layers = keras.layers
    # Zero init (the study used he_normal): the weights are replaced below, and eager random
    # init of every kernel shape on the JAX backend costs ~20 s of compilation.
    conv = dict(activation="relu", kernel_initializer="zeros", padding="same")
    inputs = keras.Input((size, size, 1))
    x, skips = inputs, []
    for level, (width, rate) in enumerate(zip(FEATURES, ENCODER_DROPOUT, strict=True)):
        x = layers.Conv2D(width, (3, 3), **conv)(x)
        x = layers.Dropout(rate)(x)
        x = layers.Conv2D(width, (3, 3), **conv)(x)
        if level < len(FEATURES) - 1:
            skips.append(x)
            x = layers.MaxPooling2D((2, 2))(x)
    for level, rate in enumerate(DECODER_DROPOUT):
        width = FEATURES[-2 - level]
        x = layers.Conv2DTranspose(width, (2, 2), strides=(2, 2), padding="same",
                                   kernel_initializer="zeros")(x)
        x = layers.concatenate([x, skips[-1 - level]])
        x = layers.Conv2D(width, (3, 3), **conv)(x)
        x = layers.Dropout(rate)(x)
        x = layers.Conv2D(width, (3, 3), **conv)(x)
    outputs = layers.Conv2D(num_classes, (1, 1), activation="softmax",
                            kernel_initializer="zeros")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)  # non-zero biases, so that bias mapping is checked too
    model.set_weights([w + 0.1 * rng.normal(size=w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("file_name", ["study.h5", "study.weights.h5"])
def test_keras_unet_matches_flax(tmp_path, file_name):
    keras_model = study_unet()
    path = tmp_path / file_name
    if file_name.endswith(".weights.h5"):
        keras_model.save_weights(path)
    else:
        keras_model.save(path)
    model = load_keras_model(path)
    assert model.config.features == FEATURES
    if file_name == "study.h5":  # the full model file stores the dropout rates
        assert model.config.encoder_dropout == ENCODER_DROPOUT
        assert model.config.decoder_dropout == DECODER_DROPOUT
    x = np.random.default_rng(1).random((2, 32, 32, 1), dtype=np.float32)
    expected = np.asarray(keras_model(x, training=False))
    got = np.asarray(jax.nn.softmax(model(x), axis=-1))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_keras_normalize_matches_keras():
    image = np.random.default_rng(2).random((20, 30), dtype=np.float32)
    image[3] = 0  # a zero row stays zero
    np.testing.assert_allclose(
        keras_normalize(image, axis=1), keras.utils.normalize(image, axis=1), atol=1e-6
    )
    assert np.allclose(np.linalg.norm(keras_normalize(image), axis=1)[[0, 5]], 1.0)


def test_not_a_unet_is_rejected(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, (3, 3))])
    model.save(tmp_path / "other.h5")
    with pytest.raises(ValueError, match="not the study's U-Net"):
        load_keras_model(tmp_path / "other.h5")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        load_keras_model(tmp_path / "broken.h5")
