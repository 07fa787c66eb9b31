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

    fun bytes(rel: String): ByteArray = File(dir, rel).readBytes()

    @Suppress("UNCHECKED_CAST")
    fun list(m: Map<String, Any?>, key: String): List<Map<String, Any?>> = m[key] as List<Map<String, Any?>>

    @Suppress("UNCHECKED_CAST")
    fun obj(m: Map<String, Any?>, key: String): Map<String, Any?> = m[key] as Map<String, Any?>

    fun int(m: Map<String, Any?>, key: String): Int = (m[key] as Double).toInt()
    fun str(m: Map<String, Any?>, key: String): String = m[key] as String
}
