package com.efficientnetedge.core

import kotlin.math.PI
import kotlin.math.ceil
import kotlin.math.cos
import kotlin.math.floor
import kotlin.math.sin

/** Resampling filters by the names `PreprocessSpec.resize_filter` uses, with Pillow's support radii. */
enum class ResizeFilter(val specName: String, internal val support: Double) {
    NEAREST("nearest", 0.0),
    BOX("box", 0.5),
    BILINEAR("bilinear", 1.0),
    HAMMING("hamming", 1.0),
    BICUBIC("bicubic", 2.0),
    LANCZOS("lanczos", 3.0);

    internal fun weight(x: Double): Double = when (this) {
        NEAREST -> 0.0
        BOX -> if (x > -0.5 && x <= 0.5) 1.0 else 0.0
        BILINEAR -> { val a = Math.abs(x); if (a < 1.0) 1.0 - a else 0.0 }
        HAMMING -> {
            val a = Math.abs(x)
            when {
                a == 0.0 -> 1.0
                a >= 1.0 -> 0.0
                // Pillow writes 0.54f / 0.46f: float constants promoted to double.
                else -> { val t = a * PI; sin(t) / t * (0.54f.toDouble() + 0.46f.toDouble() * cos(t)) }
            }
        }
        BICUBIC -> { // Keys cubic with a = -0.5, as Pillow.
            val a = Math.abs(x)
            when {
                a < 1.0 -> ((-0.5 + 2.0) * a - (-0.5 + 3.0)) * a * a + 1
                a < 2.0 -> (((a - 5) * a + 8) * a - 4) * -0.5
                else -> 0.0
            }
        }
        LANCZOS -> if (-3.0 <= x && x < 3.0) sinc(x) * sinc(x / 3) else 0.0
    }

    companion object {
        /** Parse a spec's filter name (case-insensitive). */
        fun fromName(name: String): ResizeFilter =
            values().firstOrNull { it.specName.equals(name.trim(), ignoreCase = true) }
                ?: throw MetadataException(
                    "unknown resize filter '$name'; valid: ${values().joinToString { it.specName }}"
                )

        private fun sinc(x: Double): Double = if (x == 0.0) 1.0 else { val t = x * PI; sin(t) / t }
    }
}

/**
 * Pillow's `Image.resize(size, filter, box=...)` for 8-bit RGB, re-implemented step for step from
 * `src/libImaging/Resample.c`: per-axis coefficient tables whose support widens by the downscale factor
 * (antialiasing), 22-bit fixed-point weights, a horizontal pass rounded to 8 bits, then a vertical pass.
 *
 * Holds no state besides a cache of the last coefficient tables, so one instance per thread (e.g. per
 * camera analyzer) makes repeated frames of the same geometry cheaper. Not thread-safe.
 */
class PillowResizer(private val filter: ResizeFilter) {
    private var cachedX: Coefficients? = null
    private var cachedY: Coefficients? = null

    fun resize(image: RgbImage, outWidth: Int, outHeight: Int, box: CropBox = CropBox.full(image.width, image.height)): RgbImage {
        if (outWidth <= 0 || outHeight <= 0) throw ImageFormatException("output size must be positive")
        if (box.left < 0 || box.top < 0 || box.right > image.width || box.bottom > image.height || box.width <= 0 || box.height <= 0) {
            throw ImageFormatException("box $box outside ${image.width}x${image.height} image")
        }
        if (filter == ResizeFilter.NEAREST) return nearest(image, outWidth, outHeight, box)

        val needHorizontal = outWidth != image.width || box.left != 0 || box.right != outWidth
        val needVertical = outHeight != image.height || box.top != 0 || box.bottom != outHeight
        val vert = coefficients(image.height, box.top, box.bottom, outHeight, vertical = true)

        var current = image
        var vBoundsShift = 0
        if (needHorizontal) {
            val horiz = coefficients(image.width, box.left, box.right, outWidth, vertical = false)
            val first = vert.min[0]
            val last = vert.min[outHeight - 1] + vert.count[outHeight - 1]
            current = horizontalPass(image, horiz, first, last - first)
            vBoundsShift = first
        }
        if (needVertical) {
            current = verticalPass(current, vert, vBoundsShift, outHeight)
        }
        if (current === image) current = RgbImage(image.width, image.height, image.pixels.copyOf())
        return current
    }

    /** Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis. */
    internal class Coefficients(
        val key: List<Number>, val ksize: Int, val min: IntArray, val count: IntArray, val weights: IntArray
    )

    private fun coefficients(inSize: Int, in0: Int, in1: Int, outSize: Int, vertical: Boolean): Coefficients {
        val key = listOf<Number>(inSize, in0, in1, outSize)
        val cached = if (vertical) cachedY else cachedX
        if (cached != null && cached.key == key) return cached
        val c = computeCoefficients(filter, inSize, in0.toDouble(), in1.toDouble(), outSize, key)
        if (vertical) cachedY = c else cachedX = c
        return c
    }

    private fun horizontalPass(src: RgbImage, c: Coefficients, firstRow: Int, rows: Int): RgbImage {
        val outW = c.min.size
        val out = ByteArray(outW * rows * 3)
        val px = src.pixels
        for (yy in 0 until rows) {
            val rowBase = (yy + firstRow) * src.width * 3
            for (xx in 0 until outW) {
                val xmin = c.min[xx]
                val k0 = xx * c.ksize
                var s0 = HALF; var s1 = HALF; var s2 = HALF
                for (x in 0 until c.count[xx]) {
                    val w = c.weights[k0 + x]
                    val i = rowBase + (x + xmin) * 3
                    s0 += (px[i].toInt() and 0xFF) * w
                    s1 += (px[i + 1].toInt() and 0xFF) * w
                    s2 += (px[i + 2].toInt() and 0xFF) * w
                }
                val o = (yy * outW + xx) * 3
                out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
            }
        }
        return RgbImage(outW, rows, out)
    }

    private fun verticalPass(src: RgbImage, c: Coefficients, shift: Int, outH: Int): RgbImage {
        val w = src.width
        val out = ByteArray(w * outH * 3)
        val px = src.pixels
        for (yy in 0 until outH) {
            val ymin = c.min[yy] - shift
            val k0 = yy * c.ksize
            for (xx in 0 until w) {
                var s0 = HALF; var s1 = HALF; var s2 = HALF
                for (y in 0 until c.count[yy]) {
                    val wt = c.weights[k0 + y]
                    val i = ((y + ymin) * w + xx) * 3
                    s0 += (px[i].toInt() and 0xFF) * wt
                    s1 += (px[i + 1].toInt() and 0xFF) * wt
                    s2 += (px[i + 2].toInt() and 0xFF) * wt
                }
                val o = (yy * w + xx) * 3
                out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
            }
        }
        return RgbImage(w, outH, out)
    }

    /** Nearest neighbour on the box: source pixel floor(in0 + (i + 0.5) * scale). */
    private fun nearest(image: RgbImage, outW: Int, outH: Int, box: CropBox): RgbImage {
        val sx = IntArray(outW) { minOf(image.width - 1, floor(box.left + (it + 0.5) * box.width / outW).toInt()) }
        val sy = IntArray(outH) { minOf(image.height - 1, floor(box.top + (it + 0.5) * box.height / outH).toInt()) }
        val out = ByteArray(outW * outH * 3)
        for (y in 0 until outH) for (x in 0 until outW) {
            System.arraycopy(image.pixels, (sy[y] * image.width + sx[x]) * 3, out, (y * outW + x) * 3, 3)
        }
        return RgbImage(outW, outH, out)
    }

    internal companion object {
        const val PRECISION_BITS = 32 - 8 - 2
        const val HALF = 1 shl (PRECISION_BITS - 1)

        fun clip8(v: Int): Byte {
            val s = v shr PRECISION_BITS
            return (if (s < 0) 0 else if (s > 255) 255 else s).toByte()
        }

        fun computeCoefficients(
            filter: ResizeFilter, inSize: Int, in0: Double, in1: Double, outSize: Int, key: List<Number> = emptyList()
        ): Coefficients {
            val scale = (in1 - in0) / outSize
            val filterScale = if (scale < 1.0) 1.0 else scale
            val support = filter.support * filterScale
            val ksize = ceil(support).toInt() * 2 + 1
            val mins = IntArray(outSize)
            val counts = IntArray(outSize)
            val fixed = IntArray(outSize * ksize)
            val k = DoubleArray(ksize)
            for (xx in 0 until outSize) {
                val center = in0 + (xx + 0.5) * scale
                val ss = 1.0 / filterScale
                val xmin = maxOf(0, (center - support + 0.5).toInt())
                val xmax = minOf(inSize, (center + support + 0.5).toInt()) - xmin
                var ww = 0.0
                for (x in 0 until xmax) {
                    val w = filter.weight((x + xmin - center + 0.5) * ss)
                    k[x] = w
                    ww += w
                }
                for (x in 0 until ksize) {
                    val v = if (x >= xmax) 0.0 else if (ww != 0.0) k[x] / ww else k[x]
                    val scaled = v * (1 shl PRECISION_BITS)
                    fixed[xx * ksize + x] = if (v < 0) (-0.5 + scaled).toInt() else (0.5 + scaled).toInt()
                }
                mins[xx] = xmin
                counts[xx] = maxOf(0, xmax)
            }
            return Coefficients(key, ksize, mins, counts, fixed)
        }
    }
}
