package com.efficientnetedge.core

import org.junit.Assume
import java.io.File

/** The vectors android_demo/tools/export_vectors.py wrote into $EDGE_VECTORS_DIR (shared with Python). */
object Vectors {
    val dir: File? = System.getenv("EDGE_VECTORS_DIR")?.takeIf { it.isNotEmpty() }?.let(::File)

    /** The manifest, or skip the test (fail it when EDGE_REQUIRE_VECTORS=1). */
    fun manifest(): Map<String, Any?> {
        val required = System.getenv("EDGE_REQUIRE_VECTORS") == "1"
        val d = dir
        if (d == null || !File(d, "manifest.json").isFile) {
            if (required) throw AssertionError("EDGE_REQUIRE_VECTORS=1 but no vectors in EDGE_VECTORS_DIR=${System.getenv("EDGE_VECTORS_DIR")}")
            Assume.assumeTrue("no shared vectors (set EDGE_VECTORS_DIR or install the Python SDK)", false)
        }
        return Json.parseObject(File(d, "manifest.json").readText())
    }

    /**
     * The real model's section (export_vectors.py --tflite), or skip the test; with EDGE_REQUIRE_MODEL=1
     * (tools/check_vectors.py, CI) its absence fails instead.
     */
    fun realModel(): Map<String, Any?> {
        val m = manifest()
        @Suppress("UNCHECKED_CAST")
        val model = m["model"] as Map<String, Any?>?
        if (model == null) {
            if (System.getenv("EDGE_REQUIRE_MODEL") == "1") throw AssertionError("EDGE_REQUIRE_MODEL=1 but the vectors hold no model (export_vectors.py --tflite)")
            Assume.assumeTrue("no real model in the vectors (export_vectors.py --tflite MODEL)", false)
        }
        return model!!
    }

    fun bytes(rel: String): ByteArray = File(dir, rel).readBytes()

    fun text(rel: String): String = File(dir, rel).readText(Charsets.UTF_8)

    @Suppress("UNCHECKED_CAST")
    fun list(m: Map<String, Any?>, key: String): List<Map<String, Any?>> = m[key] as List<Map<String, Any?>>

    @Suppress("UNCHECKED_CAST")
    fun obj(m: Map<String, Any?>, key: String): Map<String, Any?> = m[key] as Map<String, Any?>

    fun int(m: Map<String, Any?>, key: String): Int = (m[key] as Double).toInt()
    fun double(m: Map<String, Any?>, key: String): Double = m[key] as Double
    fun doubles(m: Map<String, Any?>, key: String): DoubleArray = (m[key] as List<*>).map { it as Double }.toDoubleArray()
    fun str(m: Map<String, Any?>, key: String): String = m[key] as String
}
