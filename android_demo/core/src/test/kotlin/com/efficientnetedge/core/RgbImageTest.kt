package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import java.nio.ByteBuffer

class RgbImageTest {
    @Test fun rgbaPlaneWithRowPaddingAndAPosition() {
        // 2x2 RGBA, rows padded to 12 bytes, buffer starting 3 bytes in.
        val bytes = ByteArray(3 + 24)
        val px = listOf(intArrayOf(1, 2, 3), intArrayOf(4, 5, 6), intArrayOf(7, 8, 9), intArrayOf(10, 11, 12))
        for (i in px.indices) {
            val at = 3 + (i / 2) * 12 + (i % 2) * 4
            for (c in 0..2) bytes[at + c] = px[i][c].toByte()
            bytes[at + 3] = -1
        }
        val buf = ByteBuffer.wrap(bytes)
        buf.position(3)
        val img = RgbImage.fromRgba(buf, 2, 2, rowStride = 12)
        assertArrayEquals(byteArrayOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), img.pixels)
        assertEquals(3, buf.position())
    }

    @Test fun argbRoundTrip() {
        val argb = intArrayOf(0xFF102030.toInt(), 0x80FFFFFF.toInt(), 0x00000000, 0xFFABCDEF.toInt())
        val img = RgbImage.fromArgb(argb, 2, 2)
        assertArrayEquals(byteArrayOf(0x10, 0x20, 0x30, -1, -1, -1, 0, 0, 0, 0xAB.toByte(), 0xCD.toByte(), 0xEF.toByte()), img.pixels)
        assertEquals(0xFF102030.toInt(), img.toArgb()[0])
        assertEquals(0xFFFFFFFF.toInt(), img.toArgb()[1])
    }

    @Test(expected = ImageFormatException::class) fun shortBufferIsTyped() {
        RgbImage.fromRgba(ByteBuffer.allocate(14), 2, 2, rowStride = 8)
    }
}
