package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Random

class ResizeTest {
    private fun random(w: Int, h: Int, seed: Long = 1): RgbImage {
        val b = ByteArray(w * h * 3)
        Random(seed).nextBytes(b)
        return RgbImage(w, h, b)
    }

    @Test fun constantImageStaysConstantWithEveryFilter() {
        val img = RgbImage(40, 30, ByteArray(40 * 30 * 3) { 77 })
        for (f in ResizeFilter.values()) {
            for ((w, h) in listOf(7 to 9, 224 to 224, 40 to 30)) {
                val out = PillowResizer(f).resize(img, w, h, CropBox(3, 1, 37, 29))
                assertTrue("$f ${w}x$h", out.pixels.all { it.toInt() == 77 })
            }
        }
    }

    @Test fun sameSizeFullBoxIsACopy() {
        val img = random(13, 11)
        val out = PillowResizer(ResizeFilter.BICUBIC).resize(img, 13, 11)
        assertArrayEquals(img.pixels, out.pixels)
    }

    @Test fun cacheDoesNotLeakBetweenGeometries() {
        val r = PillowResizer(ResizeFilter.BICUBIC)
        val a = random(50, 40, 2)
        val b = random(64, 48, 3)
        val first = r.resize(a, 16, 16).pixels
        r.resize(b, 16, 16, CropBox(8, 0, 56, 48))
        assertArrayEquals(first, r.resize(a, 16, 16).pixels)
        assertArrayEquals(first, PillowResizer(ResizeFilter.BICUBIC).resize(a, 16, 16).pixels)
    }

    @Test fun filterNamesParse() {
        assertEquals(ResizeFilter.BICUBIC, ResizeFilter.fromName("BiCubic"))
        assertEquals(ResizeFilter.LANCZOS, ResizeFilter.fromName("lanczos"))
    }

    @Test(expected = MetadataException::class) fun unknownFilterIsTyped() {
        ResizeFilter.fromName("spline36")
    }

    @Test(expected = ImageFormatException::class) fun boxOutsideImageIsTyped() {
        PillowResizer(ResizeFilter.BICUBIC).resize(random(10, 10), 5, 5, CropBox(0, 0, 11, 10))
    }

    /** Every filter, up- and downscaling, with boxes: byte-identical to Pillow (shared vectors). */
    @Test fun matchesPillowOnSharedVectors() {
        val m = Vectors.manifest()
        var cases = 0
        var worst = 0
        for (c in Vectors.list(m, "resize")) {
            val src = RgbImage(Vectors.int(c, "width"), Vectors.int(c, "height"), Vectors.bytes(Vectors.str(c, "src")))
            val box = (c["box"] as List<*>).map { (it as Double).toInt() }
            val out = PillowResizer(ResizeFilter.fromName(Vectors.str(c, "filter")))
                .resize(src, Vectors.int(c, "out_width"), Vectors.int(c, "out_height"), CropBox(box[0], box[1], box[2], box[3]))
            val expected = Vectors.bytes(Vectors.str(c, "expected"))
            val maxDiff = expected.indices.map { Math.abs((expected[it].toInt() and 0xFF) - (out.pixels[it].toInt() and 0xFF)) }.max() ?: 0
            worst = maxOf(worst, maxDiff)
            // Pillow's arithmetic step by step: identical, hamming/lanczos (sin/cos in the weights) included.
            assertEquals("${c["expected"]}: max abs difference to Pillow", 0, maxDiff)
            cases++
        }
        println("resize: $cases Pillow cases, worst max abs difference $worst")
    }
}
