package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Kotlin against the Python SDK on the same data (android_demo/tools/export_vectors.py):
 * the model-sized pixels of every shipped photo, and output post-processing on synthetic vectors.
 * EDGE_KOTLIN_OUT=DIR keeps the pixels Kotlin produced (NAME.input.u8). The real model: RealModelTest.
 */
class SharedVectorsTest {
    @Test fun inputTensorsMatchPython() {
        val m = Vectors.manifest()
        @Suppress("UNCHECKED_CAST")
        val s = m["spec"] as Map<String, Any?>
        val spec = PreprocessSpec(
            Vectors.int(s, "size"), ResizeFilter.fromName(Vectors.str(s, "resize_filter")), s["crop_fraction"] as Double,
            (s["mean"] as List<*>).map { (it as Double).toFloat() }.toFloatArray(),
            (s["std"] as List<*>).map { (it as Double).toFloat() }.toFloatArray()
        )
        val pipeline = ImagePipeline(spec)
        val outDir = System.getenv("EDGE_KOTLIN_OUT")?.takeIf { it.isNotEmpty() }?.let { File(it).apply { mkdirs() } }
        var worst = 0.0
        val photos = Vectors.list(m, "photos")
        assertTrue("no photos in the vectors", photos.isNotEmpty())
        for (p in photos) {
            val decoded = RgbImage(Vectors.int(p, "width"), Vectors.int(p, "height"), Vectors.bytes(Vectors.str(p, "rgb")))
            val started = System.nanoTime()
            val ours = pipeline.fromPhoto(decoded, 1).pixels
            val ms = (System.nanoTime() - started) / 1e6
            val python = Vectors.bytes(Vectors.str(p, "tensor"))
            assertEquals(python.size, ours.size)
            var sum = 0L
            var max = 0
            for (i in ours.indices) {
                val d = Math.abs((ours[i].toInt() and 0xFF) - (python[i].toInt() and 0xFF))
                sum += d
                if (d > max) max = d
            }
            val mean = sum.toDouble() / ours.size
            worst = maxOf(worst, mean)
            println(String.format("  %-18s %dx%d -> %d: mean abs pixel difference %.4f (max %d), %.1f ms",
                p["name"], decoded.width, decoded.height, spec.size, mean, max, ms))
            outDir?.let { File(it, File(Vectors.str(p, "tensor")).name).writeBytes(ours) }
            // The resize is Pillow's arithmetic step by step: every pixel must be the same.
            assertEquals("${p["name"]}: max abs pixel difference to edge.preprocess", 0, max)
        }
        println(String.format("input tensors: %d photos, worst mean abs pixel difference %.4f, all identical", photos.size, worst))
    }

    @Test fun outputPostProcessingMatchesPython() {
        val cases = Vectors.list(Vectors.manifest(), "outputs")
        var worstSoftmax = 0f
        for (c in cases) {
            val type = ElementType.values().first { it.name.equals(Vectors.str(c, "dtype"), ignoreCase = true) }
            val q = Quantization((c["scale"] as Double).toFloat(), Vectors.int(c, "zero_point"))
            val raw = Vectors.bytes(Vectors.str(c, "raw"))
            val real = Scores.dequantize(ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN), type, q, Vectors.int(c, "count"))
            val pyReal = ByteBuffer.wrap(Vectors.bytes(Vectors.str(c, "real"))).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
            val expectedReal = FloatArray(pyReal.remaining()) { pyReal.get(it) }
            assertArrayEquals("${c["name"]}: dequantised values", expectedReal, real, 0f)
            val logits = c["kind"] == "logits"
            val scores = if (logits) Scores.softmax(real) else real
            val top = Scores.topK(scores, 5)
            val expected = (c["topk"] as List<*>).map { it as List<*> }
            assertEquals("${c["name"]}: top-k indices", expected.map { (it[0] as Double).toInt() }, top.map { it.index })
            for ((e, t) in expected.zip(top)) {
                // Dequantised scores are bit-identical. Softmax: numpy's float32 exp against Java's double exp,
                // measured within 1 ulp (1.5e-8); allowed: 2 ulps of the score.
                val expectedScore = (e[1] as Double).toFloat()
                val diff = Math.abs(expectedScore - t.score)
                if (logits) worstSoftmax = maxOf(worstSoftmax, diff)
                assertEquals("${c["name"]}: score of ${t.index}", expectedScore, t.score, if (logits) 2 * Math.ulp(expectedScore) else 0f)
            }
        }
        println("output vectors: ${cases.size} cases, dequantisation bit-identical, top-5 identical, " +
            "softmax scores within $worstSoftmax of numpy's")
    }
}
