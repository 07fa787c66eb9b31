package com.efficientnetedge.core

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
 * Turns model-sized RGB pixels into the input tensor's bytes (NHWC, batch 1).
 *
 * real = (pixel - mean[c]) / std[c] in float32; float inputs take it as is, integer inputs take
 * `clamp(rint(real / scale) + zeroPoint)` (round half to even, like numpy). Unquantised integer inputs get
 * the raw pixel. Each channel is a 256-entry lookup table, so encoding is a copy.
 */
class InputEncoder(val type: ElementType, val quantization: Quantization, mean: FloatArray, std: FloatArray) {
    private val floatLut = Array(3) { c -> FloatArray(256) { p -> (p.toFloat() - mean[c]) / std[c] } }
    private val byteLut = Array(3) { c -> ByteArray(256) { p -> quantize(floatLut[c][p], p) } }

    init {
        if (mean.size != 3 || std.size != 3) throw TensorFormatException("mean/std need 3 channels")
    }

    private fun quantize(real: Float, pixel: Int): Byte {
        if (type == ElementType.FLOAT32) return 0
        if (!quantization.isQuantized) {
            return if (type == ElementType.UINT8) pixel.toByte() else (pixel - 128).toByte()
        }
        val q = Math.rint((real / quantization.scale).toDouble()) + quantization.zeroPoint
        val (lo, hi) = if (type == ElementType.UINT8) 0.0 to 255.0 else -128.0 to 127.0
        return maxOf(lo, minOf(hi, q)).toInt().toByte()
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
            out.position(out.position() + need)
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
     * `(q.toLong() - zeroPoint).toFloat() * scale` (float32 arithmetic, identical to numpy's
     * `(q.astype(int64) - zp).astype(float32) * float32(scale)`); unquantised integers as their value.
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
            if (quantization.isQuantized) (q - quantization.zeroPoint).toFloat() * quantization.scale else q.toFloat()
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
