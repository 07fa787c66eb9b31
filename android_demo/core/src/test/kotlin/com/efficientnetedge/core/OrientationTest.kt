package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class OrientationTest {
    /** 2x1 image: red, green. */
    private val img = RgbImage(2, 1, byteArrayOf(1, 0, 0, 2, 0, 0))

    private fun reds(i: RgbImage) = (0 until i.height).flatMap { y -> (0 until i.width).map { x -> i.channel(x, y, 0) } }

    @Test fun clockwiseRotations() {
        val r90 = Orientation.rotateClockwise(img, 90)
        assertEquals(1, r90.width); assertEquals(2, r90.height)
        assertEquals(listOf(1, 2), reds(r90)) // left pixel goes to the top
        assertEquals(listOf(2, 1), reds(Orientation.rotateClockwise(img, 180)))
        assertEquals(listOf(2, 1), reds(Orientation.rotateClockwise(img, 270)))
        assertEquals(listOf(1, 2), reds(Orientation.rotateClockwise(img, 360)))
        assertEquals(listOf(1, 2), reds(Orientation.rotateClockwise(img, -360)))
    }

    @Test fun fourQuarterTurnsAreIdentity() {
        val b = ByteArray(5 * 3 * 3) { it.toByte() }
        val src = RgbImage(5, 3, b)
        var r = src
        repeat(4) { r = Orientation.rotateClockwise(r, 90) }
        assertArrayEquals(src.pixels, r.pixels)
    }

    @Test(expected = ImageFormatException::class) fun oddAngleIsTyped() {
        Orientation.rotateClockwise(img, 45)
    }

    /** EXIF orientations 1–8 against Pillow's ImageOps.exif_transpose (shared vectors). */
    @Test fun exifMatchesPillow() {
        val o = Vectors.obj(Vectors.manifest(), "orientation")
        val src = RgbImage(Vectors.int(o, "width"), Vectors.int(o, "height"), Vectors.bytes(Vectors.str(o, "src")))
        for (r in Vectors.list(o, "results")) {
            val n = Vectors.int(r, "orientation")
            val out = Orientation.applyExif(src, n)
            assertEquals("orientation $n width", Vectors.int(r, "width"), out.width)
            assertEquals("orientation $n height", Vectors.int(r, "height"), out.height)
            assertArrayEquals("orientation $n", Vectors.bytes(Vectors.str(r, "file")), out.pixels)
        }
    }
}
