package com.efficientnetedge.core

import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.zip.CRC32
import java.util.zip.DataFormatException
import java.util.zip.Inflater

/**
 * Reads the ZIP archive of associated files (labels, JSON) that TFLite metadata appends to a .tflite
 * flatbuffer. `ZipInputStream` cannot start at byte 0 of such a file, so this finds the End Of Central
 * Directory record at the end, walks the central directory and reads each entry through its local header.
 *
 * Works whether the archive's offsets are relative to the archive start (Python's `zipfile` in append mode)
 * or absolute in the file (`zip -A`): the difference between where the central directory really is and
 * where the record says it is gives the shift. STORED and DEFLATED entries are read; CRCs are checked.
 */
object ModelArchive {
    private const val EOCD_SIG = 0x06054b50
    private const val CEN_SIG = 0x02014b50
    private const val LOC_SIG = 0x04034b50
    private const val EOCD_SIZE = 22
    private const val MAX_COMMENT = 0xFFFF
    private const val MAX_ENTRY_BYTES = 64 * 1024 * 1024

    /** Entry name → bytes. Throws [ModelArchiveException] when there is no valid archive. */
    fun read(model: ByteBuffer): Map<String, ByteArray> {
        val buf = model.duplicate().order(ByteOrder.LITTLE_ENDIAN)
        val start = buf.position()
        val end = buf.limit()
        val eocd = findEocd(buf, start, end)
            ?: throw ModelArchiveException("model has no associated-files archive (no ZIP end record); was it converted with metadata?")
        val entries = u16(buf, eocd + 10)
        val cdSize = u32(buf, eocd + 12)
        val cdOffset = u32(buf, eocd + 16)
        if (entries == 0xFFFF || cdSize == 0xFFFFFFFFL || cdOffset == 0xFFFFFFFFL) throw ModelArchiveException("ZIP64 archives are not supported")
        val cdStart = eocd - cdSize
        if (cdStart < start) throw ModelArchiveException("ZIP central directory out of range")
        val shift = cdStart - start - cdOffset // 0 for absolute offsets, the archive start for relative ones
        val out = LinkedHashMap<String, ByteArray>()
        var p = cdStart.toInt()
        repeat(entries) {
            if (p + 46 > eocd || buf.getInt(p) != CEN_SIG) throw ModelArchiveException("corrupt ZIP central directory at $p")
            val flags = u16(buf, p + 8)
            val method = u16(buf, p + 10)
            val crc = u32(buf, p + 16)
            val compSize = u32(buf, p + 20)
            val size = u32(buf, p + 24)
            val nameLen = u16(buf, p + 28)
            val extraLen = u16(buf, p + 30)
            val commentLen = u16(buf, p + 32)
            val localOffset = u32(buf, p + 42)
            val name = utf8(buf, p + 46, nameLen)
            p += 46 + nameLen + extraLen + commentLen
            if (flags and 1 != 0) throw ModelArchiveException("encrypted ZIP entry '$name'")
            if (compSize > MAX_ENTRY_BYTES || size > MAX_ENTRY_BYTES) throw ModelArchiveException("ZIP entry '$name' too large")
            val loc = start + shift + localOffset
            if (loc < start || loc + 30 > end || buf.getInt(loc.toInt()) != LOC_SIG) {
                throw ModelArchiveException("bad local header for ZIP entry '$name'")
            }
            val dataStart = loc + 30 + u16(buf, loc.toInt() + 26) + u16(buf, loc.toInt() + 28)
            if (dataStart + compSize > end) throw ModelArchiveException("ZIP entry '$name' runs past the end of the file")
            val raw = ByteArray(compSize.toInt())
            for (i in raw.indices) raw[i] = buf.get((dataStart + i).toInt())
            val data = when (method) {
                0 -> raw
                8 -> inflate(raw, size.toInt(), name)
                else -> throw ModelArchiveException("ZIP entry '$name' uses unsupported compression method $method")
            }
            if (data.size.toLong() != size) throw ModelArchiveException("ZIP entry '$name' has ${data.size} bytes, expected $size")
            val c = CRC32().apply { update(data) }
            if (c.value != crc) throw ModelArchiveException("CRC mismatch in ZIP entry '$name'")
            out[name] = data
        }
        return out
    }

    /** Convenience for byte arrays. */
    fun read(model: ByteArray): Map<String, ByteArray> = read(ByteBuffer.wrap(model))

    /** Scan back from the end for an EOCD whose comment length reaches exactly to the end of the data. */
    private fun findEocd(buf: ByteBuffer, start: Int, end: Int): Int? {
        val lowest = maxOf(start, end - EOCD_SIZE - MAX_COMMENT)
        var i = end - EOCD_SIZE
        while (i >= lowest) {
            if (buf.getInt(i) == EOCD_SIG && i + EOCD_SIZE + u16(buf, i + 20) == end) {
                val cdSize = u32(buf, i + 12)
                val cdStart = i - cdSize
                if (cdSize == 0L || (cdStart >= start && buf.getInt(cdStart.toInt()) == CEN_SIG)) return i
            }
            i--
        }
        return null
    }

    private fun inflate(raw: ByteArray, size: Int, name: String): ByteArray {
        val inflater = Inflater(true)
        try {
            inflater.setInput(raw)
            val out = ByteArrayOutputStream(size)
            val chunk = ByteArray(8192)
            while (!inflater.finished()) {
                val n = inflater.inflate(chunk)
                if (n == 0 && (inflater.needsInput() || inflater.needsDictionary())) break
                out.write(chunk, 0, n)
                if (out.size() > MAX_ENTRY_BYTES) throw ModelArchiveException("ZIP entry '$name' inflates too large")
            }
            return out.toByteArray()
        } catch (e: DataFormatException) {
            throw ModelArchiveException("corrupt deflate data in ZIP entry '$name'", e)
        } finally {
            inflater.end()
        }
    }

    private fun u16(b: ByteBuffer, at: Int): Int = b.getShort(at).toInt() and 0xFFFF
    private fun u32(b: ByteBuffer, at: Int): Long = b.getInt(at).toLong() and 0xFFFFFFFFL
    private fun u32(b: ByteBuffer, at: Long): Long = u32(b, at.toInt())
    private fun u16(b: ByteBuffer, at: Long): Int = u16(b, at.toInt())
    private fun ByteBuffer.getInt(at: Long): Int = getInt(at.toInt())
    private fun utf8(b: ByteBuffer, at: Int, len: Int): String {
        val bytes = ByteArray(len)
        for (i in 0 until len) bytes[i] = b.get(at + i)
        return String(bytes, Charsets.UTF_8)
    }
}

/** What the app needs from a model file: its efficientnet-edge metadata and its labels. */
class ModelPackage(val info: EdgeModelInfo, val labels: Labels) {
    companion object {
        /** Read metadata + labels from the .tflite bytes. Throws [EdgeException] subclasses. */
        fun fromModel(model: ByteBuffer): ModelPackage {
            val files = ModelArchive.read(model)
            val json = files[EdgeModelInfo.FILE_NAME]
                ?: throw ModelArchiveException("model metadata has no ${EdgeModelInfo.FILE_NAME} (found: ${files.keys.joinToString()})")
            val info = EdgeModelInfo.parse(String(json, Charsets.UTF_8))
            val labelsFile = info.labelsFile ?: return ModelPackage(info, Labels.NONE)
            val labels = files[labelsFile]
                ?: throw ModelArchiveException("model metadata has no labels file '$labelsFile' (found: ${files.keys.joinToString()})")
            return ModelPackage(info, Labels.parse(String(labels, Charsets.UTF_8)))
        }
    }
}
