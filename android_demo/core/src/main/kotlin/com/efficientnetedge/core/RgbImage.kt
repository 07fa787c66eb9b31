package com.efficientnetedge.core

import java.nio.ByteBuffer

/**
 * An 8-bit RGB image, rows top to bottom, 3 bytes per pixel, no padding.
 * The one pixel format the pipeline works in (Pillow's "RGB" mode).
 */
class RgbImage(val width: Int, val height: Int, val pixels: ByteArray) {
    init {
        if (width <= 0 || height <= 0) throw ImageFormatException("image size must be positive, got ${width}x$height")
        if (pixels.size != width * height * 3) {
            throw ImageFormatException("expected ${width * height * 3} bytes for ${width}x$height RGB, got ${pixels.size}")
        }
    }

    /** Channel [c] (0 = R) of pixel ([x], [y]) as 0–255. */
    fun channel(x: Int, y: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xFF

    /** Opaque `0xAARRGGBB` pixels, e.g. for `Bitmap.createBitmap(argb, w, h, ARGB_8888)`. */
    fun toArgb(): IntArray = IntArray(width * height) { i ->
        val r = pixels[i * 3].toInt() and 0xFF
        val g = pixels[i * 3 + 1].toInt() and 0xFF
        val b = pixels[i * 3 + 2].toInt() and 0xFF
        (0xFF shl 24) or (r shl 16) or (g shl 8) or b
    }

    companion object {
        /** From Android `Bitmap.getPixels` output: one `0xAARRGGBB` int per pixel, alpha ignored. */
        fun fromArgb(argb: IntArray, width: Int, height: Int): RgbImage {
            if (width <= 0 || height <= 0 || argb.size < width * height) {
                throw ImageFormatException("ARGB buffer of ${argb.size} ints too small for ${width}x$height")
            }
            val out = ByteArray(width * height * 3)
            for (i in 0 until width * height) {
                val p = argb[i]
                out[i * 3] = (p shr 16).toByte()
                out[i * 3 + 1] = (p shr 8).toByte()
                out[i * 3 + 2] = p.toByte()
            }
            return RgbImage(width, height, out)
        }

        /**
         * From an RGBA_8888 plane (CameraX `ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888`): bytes R,G,B,A per
         * pixel, rows [rowStride] bytes apart (may be padded). Reads with absolute gets; [buffer]'s position
         * is left alone.
         */
        fun fromRgba(buffer: ByteBuffer, width: Int, height: Int, rowStride: Int, pixelStride: Int = 4): RgbImage {
            if (width <= 0 || height <= 0) throw ImageFormatException("image size must be positive, got ${width}x$height")
            if (pixelStride < 3 || rowStride < width * pixelStride) {
                throw ImageFormatException("bad strides: rowStride=$rowStride pixelStride=$pixelStride width=$width")
            }
            val base = buffer.position()
            val needed = (height - 1).toLong() * rowStride + (width - 1).toLong() * pixelStride + 3
            if (buffer.limit() - base < needed) {
                throw ImageFormatException("RGBA buffer has ${buffer.limit() - base} bytes, needs $needed")
            }
            val out = ByteArray(width * height * 3)
            var o = 0
            for (y in 0 until height) {
                var i = base + y * rowStride
                for (x in 0 until width) {
                    out[o] = buffer.get(i)
                    out[o + 1] = buffer.get(i + 1)
                    out[o + 2] = buffer.get(i + 2)
                    o += 3
                    i += pixelStride
                }
            }
            return RgbImage(width, height, out)
        }
    }
}
