package com.efficientnetedge.core

import java.nio.Buffer
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** The tensor element types an image classifier's input or output can have. */
enum class ElementType(val bytes: Int) { FLOAT32(4), UINT8(1), INT8(1) }

/**
 * Affine quantisation of a tensor: `real = (q - zeroPoint) * scale`. A [scale] of 0 means "not quantised"
 * (TFLite's convention): integer values are then taken as they are.
 */
class Quantization(val scale: Float, val zeroPoint: Int) {
    val isQuantized: Boolean get() = scale != 0f
    override fun toString() = "Quantization(scale=$scale, zeroPoint=$zeroPoint)"

    companion object { val NONE = Quantization(0f, 0) }
}

/**
 * Turns model-sized RGB pixels into the input tensor's bytes (NHWC, batch 1), exactly as the Python SDK's
 * `edge.quant.input_affine(...).apply(...)`: normalisation and quantisation fold into one per-channel map
 * `v = pixel * gain + offset` with `gain = 1 / std`, `offset = -mean / std`, and for a quantised tensor
 * `gain /= scale`, `offset = offset / scale + zeroPoint` (all in double), then `v` is evaluated in float32
 * and, for integer tensors, rounded half-to-even (`np.rint`) and clamped to the type's range.
 * [mean]/[std] are the model's `input_mean`/`input_std` (raw 0–255 pixel → real value), 3 channels.
 * Each channel is a 256-entry lookup table, so encoding a frame is a table lookup per byte.
 */
class InputEncoder(val type: ElementType, val quantization: Quantization, mean: DoubleArray, std: DoubleArray) {
    private val floatLut: Array<FloatArray>
    private val byteLut: Array<ByteArray>

    init {
        if (mean.size != 3 || std.size != 3) throw TensorFormatException("mean/std need 3 channels")
        if (std.any { it == 0.0 }) throw TensorFormatException("input_std must be non-zero")
        if (quantization.scale < 0f) throw TensorFormatException("negative input scale ${quantization.scale}")
        floatLut = Array(3) { c ->
            var gain = 1.0 / std[c]
            var offset = -mean[c] / std[c]
            if (quantization.isQuantized) {
                val scale = quantization.scale.toDouble()
                gain /= scale
                offset = offset / scale + quantization.zeroPoint
            }
            val g = gain.toFloat()
            val o = offset.toFloat()
            FloatArray(256) { p -> p.toFloat() * g + o }
        }
        val (lo, hi) = if (type == ElementType.UINT8) 0.0 to 255.0 else -128.0 to 127.0
        byteLut = Array(3) { c ->
            ByteArray(256) { p -> maxOf(lo, minOf(hi, Math.rint(floatLut[c][p].toDouble()))).toInt().toByte() }
        }
    }

    /** Bytes needed for a [size]x[size]x3 input. */
    fun byteSize(size: Int): Int = size * size * 3 * type.bytes

    /** Write [image] into [out] from its position (native byte order for floats, as TFLite expects). */
    fun encode(image: RgbImage, out: ByteBuffer) {
        val need = image.width * image.height * 3 * type.bytes
        if (out.remaining() < need) throw TensorFormatException("input buffer has ${out.remaining()} bytes, needs $need")
        val px = image.pixels
        if (type == ElementType.FLOAT32) {
            val o = out.duplicate().order(ByteOrder.nativeOrder())
            for (i in px.indices) o.putFloat(floatLut[i % 3][px[i].toInt() and 0xFF])
            (out as Buffer).position(out.position() + need) // Buffer's method: exists on every Android/JVM
        } else {
            for (i in px.indices) out.put(byteLut[i % 3][px[i].toInt() and 0xFF])
        }
    }

    /** The encoded tensor as a new array (tests and tools). */
    fun encode(image: RgbImage): ByteArray {
        val b = ByteBuffer.allocate(image.width * image.height * 3 * type.bytes).order(ByteOrder.nativeOrder())
        encode(image, b)
        return b.array()
    }
}

/** Output post-processing: dequantise, softmax when the model gives logits, top-k. */
object Scores {
    /**
     * Real values of an output tensor: float32 as is (native order), integers as
     * `float(scale * (q.toLong() - zeroPoint))` with the product in double, exactly as the SDK's
     * `edge.quant.dequantize`; unquantised integers as their value.
     */
    fun dequantize(raw: ByteBuffer, type: ElementType, quantization: Quantization, count: Int): FloatArray {
        val b = raw.duplicate().order(ByteOrder.nativeOrder())
        if (b.remaining() < count * type.bytes) throw TensorFormatException("output has ${b.remaining()} bytes, needs ${count * type.bytes}")
        val base = b.position()
        return FloatArray(count) { i ->
            val q: Long = when (type) {
                ElementType.FLOAT32 -> return@FloatArray b.getFloat(base + 4 * i)
                ElementType.UINT8 -> (b.get(base + i).toLong() and 0xFF)
                ElementType.INT8 -> b.get(base + i).toLong()
            }
            if (quantization.isQuantized) (quantization.scale.toDouble() * (q - quantization.zeroPoint)).toFloat() else q.toFloat()
        }
    }

    fun dequantize(raw: ByteArray, type: ElementType, quantization: Quantization): FloatArray =
        dequantize(ByteBuffer.wrap(raw), type, quantization, raw.size / type.bytes)

    /** Numerically stable softmax, computed in double and returned as float. */
    fun softmax(logits: FloatArray): FloatArray {
        if (logits.isEmpty()) return logits
        var max = Double.NEGATIVE_INFINITY
        for (v in logits) if (v > max) max = v.toDouble()
        val e = DoubleArray(logits.size) { Math.exp(logits[it] - max) }
        val sum = e.sum()
        return FloatArray(logits.size) { (e[it] / sum).toFloat() }
    }

    /** The [k] best classes: score descending, ties by lower index first; NaN ranks last. */
    fun topK(scores: FloatArray, k: Int): List<Prediction> {
        val order = scores.indices.sortedWith(Comparator { a, b ->
            val sa = scores[a]; val sb = scores[b]
            when {
                sa.isNaN() && sb.isNaN() -> a.compareTo(b)
                sa.isNaN() -> 1
                sb.isNaN() -> -1
                sa != sb -> sb.compareTo(sa)
                else -> a.compareTo(b)
            }
        })
        return order.take(maxOf(0, k)).map { Prediction(it, scores[it]) }
    }
}

/** One ranked class. */
data class Prediction(val index: Int, val score: Float)
