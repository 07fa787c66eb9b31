package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class TensorsTest {
    private val ramp = RgbImage(256, 1, ByteArray(256 * 3) { (it / 3).toByte() })
    private val lite = doubleArrayOf(127.0, 127.0, 127.0) to doubleArrayOf(128.0, 128.0, 128.0)

    @Test fun liteUint8InputIsThePixelItself() {
        // input_mean 127 / std 128 with scale 1/128, zero point 127: the identity map (pycoral's test).
        val enc = InputEncoder(ElementType.UINT8, Quantization(1f / 128f, 127), lite.first, lite.second)
        assertArrayEquals(ramp.pixels, enc.encode(ramp))
    }

    @Test fun int8InputShiftsByTheZeroPoint() {
        val enc = InputEncoder(ElementType.INT8, Quantization(1f / 128f, -1), lite.first, lite.second)
        val out = enc.encode(ramp)
        for (p in 0..255) assertEquals(p - 128, out[p * 3].toInt())
    }

    @Test fun roundsHalfToEvenAndClamps() {
        // real = pixel (mean 0, std 1), scale 2: pixel/2 → 0.5 rounds to 0, 1.5 to 2, 2.5 to 2; zero point 200 clamps at 255.
        val enc = InputEncoder(ElementType.UINT8, Quantization(2f, 0), doubleArrayOf(0.0, 0.0, 0.0), doubleArrayOf(1.0, 1.0, 1.0))
        val out = enc.encode(ramp)
        assertEquals(listOf(0, 0, 1, 2, 2, 2, 3), (0..6).map { out[it * 3].toInt() and 0xFF })
        val high = InputEncoder(ElementType.UINT8, Quantization(1f, 200), doubleArrayOf(0.0, 0.0, 0.0), doubleArrayOf(1.0, 1.0, 1.0)).encode(ramp)
        assertEquals(255, high[100 * 3].toInt() and 0xFF)
    }

    @Test fun floatInputIsNormalised() {
        val enc = InputEncoder(ElementType.FLOAT32, Quantization.NONE, lite.first, lite.second)
        val b = ByteBuffer.wrap(enc.encode(ramp)).order(ByteOrder.nativeOrder())
        assertEquals((0 - 127) / 128f, b.getFloat(0), 0f)
        assertEquals((255 - 127) / 128f, b.getFloat(255 * 12), 0f)
    }

    @Test fun dequantiseWithoutOverflow() {
        val raw = byteArrayOf(0, -1, 127, -128)
        assertArrayEquals(floatArrayOf(-64f, 63.5f, -0.5f, 0f),
            Scores.dequantize(raw, ElementType.UINT8, Quantization(0.5f, 128)), 0f)
        assertArrayEquals(floatArrayOf(-32.25f, -32.5f, -0.5f, -64.25f),
            Scores.dequantize(raw, ElementType.INT8, Quantization(0.25f, 129)), 0f)
        assertArrayEquals(floatArrayOf(0f, 255f, 127f, 128f),
            Scores.dequantize(raw, ElementType.UINT8, Quantization.NONE), 0f)
    }

    @Test fun topKOrdersByScoreThenIndex() {
        val s = floatArrayOf(0.1f, 0.5f, Float.NaN, 0.5f, 0.9f, 0.1f)
        assertEquals(listOf(4, 1, 3, 0, 5, 2), Scores.topK(s, 10).map { it.index })
        assertEquals(listOf(Prediction(4, 0.9f)), Scores.topK(s, 1))
        assertEquals(emptyList<Prediction>(), Scores.topK(s, 0))
    }

    @Test fun softmaxIsStable() {
        val p = Scores.softmax(floatArrayOf(1000f, 1000f, -1000f))
        assertEquals(0.5f, p[0], 1e-7f); assertEquals(0.5f, p[1], 1e-7f); assertEquals(0f, p[2], 0f)
    }
}
