package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * A real model written by the SDK (CI: `make demo`'s out/lite0_int8.tflite, passed to
 * export_vectors.py --tflite) read by Kotlin's own code, compared with Python on the same bytes:
 * the metadata and labels; the input tensor Kotlin's InputEncoder builds for every photo; Kotlin's
 * dequantisation and top-5 of the model's real outputs. EDGE_KOTLIN_OUT=DIR keeps Kotlin's encoded tensors
 * (NAME.input.enc), which tools/check_vectors.py runs through the interpreter exactly as Kotlin wrote them.
 */
class RealModelTest {
    private fun pkg(model: Map<String, Any?>) =
        ModelPackage.fromModel(ByteBuffer.wrap(Vectors.bytes(Vectors.str(model, "file"))))

    private fun elementType(dtype: String) = when (dtype) {
        "uint8" -> ElementType.UINT8
        "int8" -> ElementType.INT8
        "float32" -> ElementType.FLOAT32
        else -> throw AssertionError("model tensor type $dtype is not one the app feeds")
    }

    private fun tensor(model: Map<String, Any?>, key: String): Triple<ElementType, Quantization, Int> {
        val t = Vectors.obj(model, key)
        val shape = (t["shape"] as List<*>).map { (it as Double).toInt() }
        var count = 1
        for (d in shape) count *= d
        return Triple(elementType(Vectors.str(t, "dtype")),
            Quantization(Vectors.double(t, "scale").toFloat(), Vectors.int(t, "zero_point")), count)
    }

    @Test fun metadataAsKotlinReadsItMatchesTheSdk() {
        val model = Vectors.realModel()
        val info = pkg(model).info
        val labels = pkg(model).labels
        val py = Vectors.obj(model, "metadata")
        val spec = Vectors.obj(py, "spec")
        assertEquals(py["name"], info.model)
        assertEquals(Vectors.int(spec, "size"), info.spec.size)
        assertEquals(ResizeFilter.fromName(Vectors.str(spec, "resize_filter")), info.spec.resizeFilter)
        assertEquals(Vectors.double(spec, "crop_fraction"), info.spec.cropFraction, 0.0)
        assertArrayEquals(Vectors.doubles(spec, "mean").map { it.toFloat() }.toFloatArray(), info.spec.mean, 0f)
        assertArrayEquals(Vectors.doubles(spec, "std").map { it.toFloat() }.toFloatArray(), info.spec.std, 0f)
        val perChannel = { v: DoubleArray -> if (v.size == 1) DoubleArray(3) { v[0] } else v }
        assertArrayEquals(perChannel(Vectors.doubles(py, "input_mean")), info.inputMean, 0.0)
        assertArrayEquals(perChannel(Vectors.doubles(py, "input_std")), info.inputStd, 0.0)
        assertEquals(mapOf("probabilities" to OutputKind.PROBABILITIES, "logits" to OutputKind.LOGITS)[py["output"]], info.output)
        val pythonLabels = Vectors.text(Vectors.str(py, "labels_file")).split("\n").dropLast(1)
        assertEquals(Vectors.int(py, "labels"), pythonLabels.size)
        assertEquals(pythonLabels, labels.names)
        println("model metadata read by Kotlin: '${info.model}', ${info.spec}, input_mean ${info.inputMean.toList()}, " +
            "input_std ${info.inputStd.toList()}, ${info.output}, ${labels.size} labels: same as edge.metadata")
    }

    @Test fun kotlinEncodesEveryPhotoExactlyAsPython() {
        val model = Vectors.realModel()
        val info = pkg(model).info
        val (type, quant, count) = tensor(model, "input")
        // Everything below comes from Kotlin's reading of the model; the tensor type and quantisation come
        // from the interpreter (on the phone: Interpreter.getInputTensor(0)).
        val encoder = InputEncoder(type, quant, info.inputMean, info.inputStd)
        val pipeline = ImagePipeline(info.spec)
        val photos = Vectors.list(Vectors.manifest(), "photos").associateBy { it["name"] as String }
        val outDir = System.getenv("EDGE_KOTLIN_OUT")?.takeIf { it.isNotEmpty() }?.let { File(it).apply { mkdirs() } }
        val rows = Vectors.list(model, "photos")
        assertTrue("no photos for the model", rows.isNotEmpty())
        for (row in rows) {
            val name = Vectors.str(row, "photo")
            val p = photos.getValue(name)
            val decoded = RgbImage(Vectors.int(p, "width"), Vectors.int(p, "height"), Vectors.bytes(Vectors.str(p, "rgb")))
            val encoded = encoder.encode(pipeline.fromPhoto(decoded, 1))
            outDir?.let { File(it, "$name.input.enc").writeBytes(encoded) }
            val python = Vectors.bytes(Vectors.str(row, "encoded"))
            assertEquals("$name: encoded size", count * type.bytes, encoded.size)
            assertEquals("$name: encoded size", python.size, encoded.size)
            var differing = 0
            for (i in encoded.indices) if (encoded[i] != python[i]) differing++
            println(String.format("  %-18s %s tensor of %d bytes: %d differ from edge.quant.input_affine's", name, type, encoded.size, differing))
            assertEquals("$name: bytes of Kotlin's encoded input tensor that differ from Python's", 0, differing)
        }
    }

    @Test fun kotlinPostProcessesTheModelsRealOutputsAsPython() {
        val model = Vectors.realModel()
        val pkg = pkg(model)
        val (type, quant, count) = tensor(model, "output")
        var worstSoftmax = 0f
        for (row in Vectors.list(model, "photos")) {
            val name = Vectors.str(row, "photo")
            val raw = ByteBuffer.wrap(Vectors.bytes(Vectors.str(row, "raw"))).order(ByteOrder.LITTLE_ENDIAN)
            val real = Scores.dequantize(raw, type, quant, count)
            val py = ByteBuffer.wrap(Vectors.bytes(Vectors.str(row, "real"))).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
            assertArrayEquals("$name: dequantised outputs", FloatArray(py.remaining()) { py.get(it) }, real, 0f)
            val logits = pkg.info.output == OutputKind.LOGITS
            val top = Scores.topK(if (logits) Scores.softmax(real) else real, 5)
            val expected = (row["topk"] as List<*>).map { it as List<*> }
            assertEquals("$name: top-5 indices", expected.map { (it[0] as Double).toInt() }, top.map { it.index })
            for ((e, t) in expected.zip(top)) {
                val diff = Math.abs((e[1] as Double).toFloat() - t.score)
                worstSoftmax = maxOf(worstSoftmax, if (logits) diff else 0f)
                val expectedScore = (e[1] as Double).toFloat() // softmax: 2 ulps, as in SharedVectorsTest
                assertEquals("$name: score of ${t.index}", expectedScore, t.score, if (logits) 2 * Math.ulp(expectedScore) else 0f)
                assertEquals("$name: label of ${t.index}", e[2], pkg.labels.nameOf(t.index))
            }
            println(String.format("  %-18s top-1 %d '%s' %.4f: same top-5, scores and labels as Python", name,
                top[0].index, pkg.labels.nameOf(top[0].index), top[0].score))
        }
        if (pkg.info.output == OutputKind.LOGITS) println("softmax: worst score difference $worstSoftmax")
    }
}
