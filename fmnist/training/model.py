"""Dense Fashion-MNIST models built from a Variant, and the fast training step.

Speed comes from one idea: a tiny dense net spends far more time in per-step overhead
(Python, op dispatch, launching an XLA program) than in arithmetic. So the input
pipeline hands `fit` a *chunk* of K minibatches at a time and `ChunkedSequential`
runs them in a tf.while_loop inside one XLA-compiled program, calling Keras's own
train_step for each minibatch. Same optimizer, same batch size, same updates as plain
`fit`, about a quarter of the wall time on CPU; callbacks, history and checkpoints work
because it is still `fit`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from fmnist.training.variants import Variant

NUM_CLASSES = 10
DEFAULT_CHUNK = 256  # minibatches per XLA program (docs/decisions.md, "the chunked XLA step")


class ChunkedSequential(keras.Sequential):
    """A Sequential whose train_step takes [K, batch, ...] and runs K optimizer steps."""

    def train_step(self, data):
        xs, ys = data
        step = super().train_step

        def body(i):
            step((xs[i], ys[i]))
            return (i + 1,)

        tf.while_loop(lambda i: i < tf.shape(xs)[0], body, (tf.constant(0),))
        return self.get_metrics_result()

    def make_test_function(self, force=False):
        # Evaluation is a few large batches per epoch: XLA-compiling it cost more than
        # it saved (docs/decisions.md, "less start-up work"). Only the training steps
        # are compiled.
        jit, self.jit_compile = self.jit_compile, False
        try:
            return super().make_test_function(force)
        finally:
            self.jit_compile = jit


@keras.saving.register_keras_serializable("fmnist")
class Dropout(keras.layers.Dropout):
    """Keras Dropout with its mask drawn by ThreeFry instead of the default Philox.

    Under XLA on CPU, Philox costs ~1.1 ms per [128, 512] mask, ThreeFry ~0.1 ms
    (measured here), which made a 512-256 net with dropout 6x slower than without.
    TensorFlow's non-XLA kernels have no ThreeFry, so `xla=False` keeps the default."""

    def __init__(self, rate, xla: bool = True, **kwargs):
        super().__init__(rate, **kwargs)
        self.alg = "threefry" if xla else "auto_select"

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        keep = tf.random.stateless_uniform(tf.shape(inputs), seed, alg=self.alg) >= self.rate
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))


class DistilledSequential(ChunkedSequential):
    """A student: its loss is (1 - alpha) x its own loss on the labels + alpha x the
    distillation loss on the teacher's logits for the same (augmented) batch, computed
    inside the training step (Hinton et al. 2015: KL divergence of the softened
    distributions, times T^2, keras.distillation.LogitsDistillation). Validation and
    test losses are the student's own.

    Not keras.distillation.Distiller: it wraps the student in another Model with
    Keras's plain train_step, so the chunked XLA step would be lost, and its
    checkpoints and validation would carry the teacher. Here the teacher sits outside
    Keras's tracking (`_Teacher`): the checkpoints and get_weights() are the student's
    alone."""

    def distil_from(self, teacher: keras.Model, temperature: float, alpha: float) -> None:
        teacher.trainable = False
        # A KLDivergence instance, not the default "kl_divergence": Keras 3.15 turns the
        # string into a plain function, which LogitsDistillation then applies to the
        # scaled logits themselves (no softmax, no T^2), not to the distributions.
        distill = keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence()
        )
        self._teacher = _Teacher(teacher, distill, alpha)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        own = super().compute_loss(x, y, y_pred, sample_weight, training)
        if not training:
            return own
        t = self._teacher
        soft = t.loss.compute_loss(t.model(x, training=False), y_pred)
        return (1.0 - t.alpha) * own + t.alpha * soft


class _Teacher:
    """The teacher, its distillation loss and weight; a plain object, so Keras does not
    track the teacher as one of the student's layers."""

    def __init__(self, model, loss, alpha: float):
        self.model, self.loss, self.alpha = model, loss, alpha


def build(variant: Variant, jit: bool = True) -> ChunkedSequential:
    """uint8 [N, 28, 28] in (0 = background), logits [N, 10] out; scaling is inside.
    `jit`: the model will be trained XLA-compiled (picks the dropout RNG). A teacher
    (`conv` stages) has a 3x3 convolution with stride 2 per stage (28 -> 14 -> 7 -> 4)
    before its dense layers; a student (`teacher` set) is a DistilledSequential."""
    layers: list = [
        keras.Input((28, 28), dtype="uint8", name="images"),
        keras.layers.Rescaling(1 / 255.0),
    ]
    if variant.conv:
        layers.append(keras.layers.Reshape((28, 28, 1)))
    for filters in variant.conv:
        # Stride 2 rather than a max-pool: far faster to train on CPU (docs/performance.md).
        layers += _normalized(keras.layers.Conv2D, variant, filters, 3, strides=2, padding="same")
    layers.append(keras.layers.Flatten())
    for units in variant.hidden:
        layers += _normalized(keras.layers.Dense, variant, units)
        if variant.dropout:
            layers.append(Dropout(variant.dropout, xla=jit))
    layers.append(keras.layers.Dense(NUM_CLASSES, name="logits"))
    kind = DistilledSequential if variant.teacher else ChunkedSequential
    return kind(layers, name=variant.name)


def _normalized(kind, variant: Variant, *args, **kwargs) -> list:
    """A Dense or Conv2D layer (`kind(*args, **kwargs)`), its normalization and
    activation."""
    if variant.normalization == "none":
        return [kind(*args, activation=variant.activation, **kwargs)]
    # Normalize the pre-activation; the norm's shift makes the layer's bias redundant.
    layer = kind(*args, use_bias=False, **kwargs)
    norm = (
        keras.layers.BatchNormalization()
        if variant.normalization == "batch"
        else keras.layers.LayerNormalization()
    )
    return [layer, norm, keras.layers.Activation(variant.activation)]


def optimizer(variant: Variant, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = variant.learning_rate
    if variant.schedule == "cosine":
        warmup = variant.warmup_epochs * steps_per_epoch
        decay = max(1, variant.epochs * steps_per_epoch - warmup)
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else lr, decay, warmup_target=lr if warmup else None, warmup_steps=warmup
        )
    if variant.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=variant.weight_decay)
    if variant.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(lr)


def compile_for_training(
    model: keras.Model, variant: Variant, steps_per_epoch: int, jit: bool = True
) -> None:
    model.compile(
        optimizer=optimizer(variant, steps_per_epoch),
        loss=SmoothedSparseCE(variant.label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit,
    )


@keras.saving.register_keras_serializable("fmnist")
class SmoothedSparseCE(keras.losses.Loss):
    """Sparse categorical cross-entropy on logits, with optional label smoothing
    (Keras's sparse loss has no label_smoothing argument)."""

    def __init__(self, label_smoothing: float = 0.0, **kwargs):
        super().__init__(name="sparse_ce", **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        onehot = keras.ops.one_hot(
            keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), NUM_CLASSES
        )
        return keras.losses.categorical_crossentropy(
            onehot, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {"label_smoothing": self.label_smoothing}


def training_dataset(
    x: np.ndarray, y: np.ndarray, variant: Variant, chunk: int = DEFAULT_CHUNK
) -> tuple[tf.data.Dataset, int, int]:
    """An endless dataset of [K, batch, 28, 28] chunks, reshuffled every epoch; returns
    (dataset, chunks per epoch, K). Augmentation happens here, on the host, in parallel
    with training.

    Every chunk has the same K, so XLA compiles the training program once (a smaller
    last chunk would cost a second compile, ~2 s). K is chosen so that at most a few
    minibatches per epoch are left over; those images, like the last partial batch,
    sit out one epoch, and a different random few sit out the next."""
    n, b = len(y), variant.batch_size
    batches = n // b
    if batches == 0:
        raise ValueError(f"{variant.name}: batch_size {b} is larger than the {n} training images")
    chunks = -(-batches // chunk)
    k = batches // chunks
    images, labels = tf.constant(x), tf.constant(y.astype(np.int32))

    def gather(idx, seed):
        xs = tf.gather(images, idx)
        if variant.augment_flip:
            xs = _random_flip(xs, seed)
        if variant.augment_shift:
            xs = _random_shift(xs, variant.augment_shift, seed + 1)
        if variant.augment_rotate:
            xs = _random_rotate(xs, variant.augment_rotate, seed + 2)
        return xs, tf.gather(labels, idx)

    ds = (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=variant.seed, reshuffle_each_iteration=True)
        .batch(b, drop_remainder=True)
        .batch(k, drop_remainder=True)
        .repeat()
        .enumerate()
        .map(
            lambda i, idx: gather(idx, tf.stack([tf.cast(variant.seed, tf.int64), i])),
            num_parallel_calls=2,
        )
        .prefetch(2)
    )
    # No tf.data autotuning: deleting an autotuned iterator waits for its optimization
    # thread's sleep, which grows with the iterator's age, so a task sat idle at the
    # end of `fit` (docs/decisions.md, "no tf.data autotuning"). Fixed parallelism is
    # all this pipeline needs: a chunk is one gather, prepared while XLA trains.
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options), chunks, k


def _random_flip(xs, seed):
    """Mirror a random half of the images left-right."""
    flip = tf.random.stateless_uniform(tf.shape(xs)[:-2], seed) < 0.5
    return tf.where(flip[..., None, None], tf.reverse(xs, axis=[-1]), xs)


def _random_shift(xs, max_shift: int, seed):
    """Shift each image by up to max_shift pixels in x and y, filling with background."""
    shape = tf.shape(xs)
    flat = tf.reshape(xs, [-1, 28, 28])
    n = tf.shape(flat)[0]
    padded = tf.pad(flat, [[0, 0], [max_shift, max_shift], [max_shift, max_shift]])
    offsets = tf.random.stateless_uniform([n, 2], seed, 0, 2 * max_shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(28)[None, :]
    cols = offsets[:, 1:] + tf.range(28)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    return tf.reshape(out, shape)


def _random_rotate(xs, max_degrees: int, seed):
    """Turn each image by a random angle within +-max_degrees about its centre
    (bilinear, the corners filled with background): photos are not always upright."""
    shape = tf.shape(xs)
    flat = tf.cast(tf.reshape(xs, [-1, 28, 28, 1]), tf.float32)
    n = tf.shape(flat)[0]
    limit = max_degrees * np.pi / 180
    theta = tf.random.stateless_uniform([n], seed, -limit, limit)
    cos, sin, c = tf.cos(theta), tf.sin(theta), 13.5
    zero = tf.zeros_like(theta)
    # Output pixel (x, y) is read from input (cos x - sin y + a, sin x + cos y + b).
    transforms = tf.stack(
        [cos, -sin, c - cos * c + sin * c, sin, cos, c - sin * c - cos * c, zero, zero], axis=1
    )
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=flat,
        transforms=transforms,
        output_shape=tf.constant([28, 28]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.reshape(tf.cast(tf.round(out), xs.dtype), shape)
