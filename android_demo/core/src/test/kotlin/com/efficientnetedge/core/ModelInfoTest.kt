package com.efficientnetedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.fail
import org.junit.Test

class ModelInfoTest {
    private val sample = """{"format": "efficientnet-edge/1", "model": "lite0",
        "spec": {"size": 224, "resize_filter": "bicubic", "crop_fraction": 0.875, "mean": [127, 127, 127], "std": [128, 128, 128]},
        "input_mean": [127.0], "input_std": [128.0], "output": "probabilities", "labels_file": "labels.txt"}"""

    @Test fun parsesTheSdkSchema() {
        val info = EdgeModelInfo.parse(sample)
        assertEquals("lite0", info.model)
        assertEquals(224, info.spec.size)
        assertEquals(ResizeFilter.BICUBIC, info.spec.resizeFilter)
        assertEquals(0.875, info.spec.cropFraction, 0.0)
        assertArrayEquals(doubleArrayOf(127.0, 127.0, 127.0), info.inputMean, 0.0)
        assertArrayEquals(doubleArrayOf(128.0, 128.0, 128.0), info.inputStd, 0.0)
        assertEquals(OutputKind.PROBABILITIES, info.output)
        assertEquals("labels.txt", info.labelsFile)
    }

    @Test fun perChannelValuesLogitsAndNoLabels() {
        val info = EdgeModelInfo.parse(sample
            .replace("\"input_mean\": [127.0]", "\"input_mean\": [123.675, 116.28, 103.53]")
            .replace("\"probabilities\"", "\"logits\"")
            .replace("\"labels_file\": \"labels.txt\"", "\"labels_file\": null"))
        assertArrayEquals(doubleArrayOf(123.675, 116.28, 103.53), info.inputMean, 0.0)
        assertEquals(OutputKind.LOGITS, info.output)
        assertNull(info.labelsFile)
    }

    @Test fun rejectsWhatItCannotServe() {
        val bad = listOf(
            sample.replace("efficientnet-edge/1", "efficientnet-edge/2"),
            sample.replace("efficientnet-edge/1", "something-else"),
            sample.replace("\"bicubic\"", "\"spline\""),
            sample.replace("\"output\": \"probabilities\"", "\"output\": \"boxes\""),
            sample.replace("\"input_std\": [128.0]", "\"input_std\": [0]"),
            sample.replace("\"input_mean\": [127.0]", "\"input_mean\": [1, 2]"),
            sample.replace("\"size\": 224", "\"size\": 22.5"),
            sample.replace("\"crop_fraction\": 0.875", "\"crop_fraction\": 1.5"),
            sample.replace("\"spec\": {", "\"spec\": null, \"x\": {"),
            "[1, 2]"
        )
        for (text in bad) {
            try {
                EdgeModelInfo.parse(text)
                fail("accepted: $text")
            } catch (e: EdgeException) {
                // MetadataException or JsonException: both typed
            }
        }
    }

    @Test fun labelsLikeTheSdk() {
        val l = Labels.parse("\uFEFFtabby\r\n  tiger cat \n\n\nEgyptian cat\n")
        assertEquals(listOf("tabby", "tiger cat", "Egyptian cat"), l.names)
        assertEquals("tabby", l.nameOf(0))
        assertEquals("class 7", l.nameOf(7))
        assertEquals("class 3", Labels.NONE.nameOf(3))
    }

    @Test(expected = MetadataException::class) fun emptyLabelsFileIsTyped() {
        Labels.parse("\n \n")
    }
}
