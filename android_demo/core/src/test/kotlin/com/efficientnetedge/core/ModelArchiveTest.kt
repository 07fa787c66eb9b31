package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.util.Random
import java.util.zip.CRC32
import java.util.zip.ZipEntry
import java.util.zip.ZipOutputStream

class ModelArchiveTest {
    private val json = """{"format": "efficientnet-edge/1", "model": "lite0", "spec": {"size": 224,
        "resize_filter": "bicubic", "crop_fraction": 0.875, "mean": [127, 127, 127], "std": [128, 128, 128]},
        "input_mean": [127.0], "input_std": [128.0], "output": "probabilities", "labels_file": "labels.txt"}"""
    private val labels = "tench\ngoldfish\n"

    private fun zip(stored: Boolean): ByteArray {
        val bos = ByteArrayOutputStream()
        ZipOutputStream(bos).use { z ->
            for ((name, text) in listOf("labels.txt" to labels, EdgeModelInfo.FILE_NAME to json)) {
                val data = text.toByteArray()
                val e = ZipEntry(name)
                if (stored) {
                    e.method = ZipEntry.STORED
                    e.size = data.size.toLong(); e.compressedSize = data.size.toLong()
                    e.crc = CRC32().apply { update(data) }.value
                }
                z.putNextEntry(e); z.write(data); z.closeEntry()
            }
        }
        return bos.toByteArray()
    }

    /** A flatbuffer stand-in: TFL3 identifier, random bytes, and a decoy EOCD signature. */
    private fun flatbuffer(): ByteArray {
        val b = ByteArray(4096)
        Random(3).nextBytes(b)
        "TFL3".toByteArray().copyInto(b, 4)
        byteArrayOf(0x50, 0x4b, 0x05, 0x06).copyInto(b, 2000)
        return b
    }

    @Test fun readsStoredAndDeflatedArchivesAppendedToAModel() {
        for (stored in listOf(true, false)) {
            val model = flatbuffer() + zip(stored)
            val files = ModelArchive.read(model)
            assertEquals(setOf("labels.txt", EdgeModelInfo.FILE_NAME), files.keys)
            assertArrayEquals(labels.toByteArray(), files["labels.txt"])
            val pkg = ModelPackage.fromModel(ByteBuffer.wrap(model))
            assertEquals(listOf("tench", "goldfish"), pkg.labels.names)
            assertEquals(224, pkg.info.spec.size)
        }
    }

    @Test fun readsFromADirectBufferWithAPosition() {
        val model = flatbuffer() + zip(true)
        val direct = ByteBuffer.allocateDirect(model.size + 10)
        direct.position(10); direct.put(model); direct.position(10)
        assertEquals(2, ModelArchive.read(direct).size)
    }

    @Test fun absoluteOffsetsAlsoWork() {
        // `zip -A` style: rewrite the offsets so they count from the start of the file.
        val fb = flatbuffer()
        val z = zip(true)
        val model = fb + z
        val bb = ByteBuffer.wrap(model).order(java.nio.ByteOrder.LITTLE_ENDIAN)
        val eocd = model.size - 22
        val cdOff = bb.getInt(eocd + 16)
        bb.putInt(eocd + 16, cdOff + fb.size)
        var p = fb.size + cdOff
        repeat(bb.getShort(eocd + 10).toInt()) {
            bb.putInt(p + 42, bb.getInt(p + 42) + fb.size)
            p += 46 + bb.getShort(p + 28) + bb.getShort(p + 30) + bb.getShort(p + 32)
        }
        assertEquals(2, ModelArchive.read(model).size)
    }

    @Test fun typedErrors() {
        val cases = mapOf(
            "no archive" to flatbuffer(),
            "truncated" to (flatbuffer() + zip(true)).let { it.copyOf(it.size - 30) },
            "corrupted data" to (flatbuffer() + zip(true)).also { it[4096 + 40] = (it[4096 + 40] + 1).toByte() }
        )
        for ((what, bytes) in cases) {
            try {
                ModelArchive.read(bytes)
                fail("accepted: $what")
            } catch (e: ModelArchiveException) {
                // expected
            }
        }
    }

    @Test fun missingMetadataFileIsTyped() {
        val bos = ByteArrayOutputStream()
        ZipOutputStream(bos).use { z -> z.putNextEntry(ZipEntry("other.txt")); z.write(1); z.closeEntry() }
        try {
            ModelPackage.fromModel(ByteBuffer.wrap(flatbuffer() + bos.toByteArray()))
            fail("accepted a model without efficientnet_edge.json")
        } catch (e: ModelArchiveException) {
            assertTrue("message names the missing file: ${e.message}", e.message!!.contains(EdgeModelInfo.FILE_NAME))
        }
    }

    /** Files written by Python's zipfile in append mode, as the SDK's edge.metadata writes models. */
    @Test fun readsPythonWrittenArchives() {
        for (a in Vectors.list(Vectors.manifest(), "archives")) {
            val pkg = ModelPackage.fromModel(ByteBuffer.wrap(Vectors.bytes(Vectors.str(a, "file"))))
            assertEquals(Vectors.int(a, "labels"), pkg.labels.size)
            assertEquals(Vectors.int(a, "size"), pkg.info.spec.size)
            assertEquals(a["crop_fraction"] as Double, pkg.info.spec.cropFraction, 0.0)
        }
    }
}
