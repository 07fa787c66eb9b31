package com.efficientnetedge.core

/** How pixels reach the model: the SDK's `PreprocessSpec` (mean/std in 0–255 pixel units). */
class PreprocessSpec(
    val size: Int,
    val resizeFilter: ResizeFilter,
    val cropFraction: Double,
    val mean: FloatArray,
    val std: FloatArray
) {
    override fun toString() =
        "PreprocessSpec(size=$size, filter=${resizeFilter.specName}, crop=$cropFraction, mean=${mean.toList()}, std=${std.toList()})"
}

/** Whether the model's output is already probabilities or logits that need a softmax. */
enum class OutputKind { PROBABILITIES, LOGITS }

/**
 * The parsed `efficientnet_edge.json` stored in the model (written by the SDK's `edge.metadata`).
 * [inputMean]/[inputStd] (1 or 3 values in the file, 3 here) map a raw 0–255 pixel to the input tensor's
 * real value: `real = (pixel - inputMean[c]) / inputStd[c]`. [labelsFile] is null for a model without labels.
 */
class EdgeModelInfo(
    val format: String,
    val model: String,
    val spec: PreprocessSpec,
    val inputMean: DoubleArray,
    val inputStd: DoubleArray,
    val output: OutputKind,
    val labelsFile: String?
) {
    companion object {
        const val FILE_NAME = "efficientnet_edge.json"
        const val FORMAT_PREFIX = "efficientnet-edge/"
        const val SUPPORTED_MAJOR = 1

        /** Parse and validate the JSON text. Throws [MetadataException] (or [JsonException]). */
        fun parse(jsonText: String): EdgeModelInfo {
            val root = Json.parseObject(jsonText)
            val format = root.string("format")
            if (!format.startsWith(FORMAT_PREFIX)) throw MetadataException("not an efficientnet-edge metadata file: format '$format'")
            val major = format.removePrefix(FORMAT_PREFIX).substringBefore('.').toIntOrNull()
            if (major != SUPPORTED_MAJOR) throw MetadataException("unsupported metadata format '$format' (this app reads ${FORMAT_PREFIX}$SUPPORTED_MAJOR)")
            @Suppress("UNCHECKED_CAST")
            val specMap = root["spec"] as? Map<String, Any?>
                ?: throw MetadataException("metadata has no preprocessing 'spec'; convert the model with the SDK's converter")
            val size = specMap.number("size")
            if (size != Math.floor(size) || size < 1 || size > 4096) throw MetadataException("spec.size must be a positive integer, got $size")
            val crop = specMap.number("crop_fraction", 0.875)
            if (!(crop > 0.0 && crop <= 1.0)) throw MetadataException("spec.crop_fraction must be in (0, 1], got $crop")
            val spec = PreprocessSpec(
                size = size.toInt(),
                resizeFilter = ResizeFilter.fromName(specMap.string("resize_filter", "bicubic")),
                cropFraction = crop,
                mean = specMap.channels("mean").toFloats(),
                std = specMap.channels("std").toFloats()
            )
            val inputMean = root.channels("input_mean")
            val inputStd = root.channels("input_std")
            if (inputStd.any { it == 0.0 }) throw MetadataException("input_std must not contain 0")
            val output = when (val o = root.string("output", "probabilities")) {
                "probabilities" -> OutputKind.PROBABILITIES
                "logits" -> OutputKind.LOGITS
                else -> throw MetadataException("unknown output kind '$o' (probabilities or logits)")
            }
            val labelsFile = if (root.containsKey("labels_file")) root["labels_file"]?.let { root.string("labels_file") } else "labels.txt"
            return EdgeModelInfo(format, root.string("model", "unknown"), spec, inputMean, inputStd, output, labelsFile)
        }

        private fun Map<String, Any?>.string(key: String, default: String? = null): String {
            val v = this[key] ?: return default ?: throw MetadataException("metadata is missing '$key'")
            return v as? String ?: throw MetadataException("'$key' must be a string, got $v")
        }

        private fun Map<String, Any?>.number(key: String, default: Double? = null): Double {
            val v = this[key] ?: return default ?: throw MetadataException("metadata is missing '$key'")
            return v as? Double ?: throw MetadataException("'$key' must be a number, got $v")
        }

        private fun DoubleArray.toFloats() = FloatArray(size) { this[it].toFloat() }

        /** 1 or 3 numbers, as a 3-element per-channel array. */
        private fun Map<String, Any?>.channels(key: String): DoubleArray {
            val v = this[key] ?: throw MetadataException("metadata is missing '$key'")
            val list = (v as? List<*>) ?: listOf(v)
            val nums = list.map { it as? Double ?: throw MetadataException("'$key' must hold numbers, got $it") }
            return when (nums.size) {
                1 -> DoubleArray(3) { nums[0] }
                3 -> DoubleArray(3) { nums[it] }
                else -> throw MetadataException("'$key' must have 1 or 3 values, got ${nums.size}")
            }
        }
    }
}

/** Class names; index i names output i. */
class Labels(val names: List<String>) {
    val size: Int get() = names.size

    /** The name of class [index], or "class N" where there is no label. */
    fun nameOf(index: Int): String = names.getOrNull(index) ?: "class $index"

    companion object {
        val NONE = Labels(emptyList())

        /** One label per line, whitespace-trimmed, blank lines skipped: as the SDK's `read_metadata`. */
        fun parse(text: String): Labels {
            val names = text.removePrefix("\uFEFF").lines().map { it.trim() }.filter { it.length > 0 }
            if (names.isEmpty()) throw MetadataException("labels file is empty")
            return Labels(names)
        }
    }
}
