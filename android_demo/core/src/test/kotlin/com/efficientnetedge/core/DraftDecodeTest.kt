package com.efficientnetedge.core

import org.junit.Assert.assertEquals
import org.junit.Test

class DraftDecodeTest {
    private fun spec(size: Int, crop: Double) =
        PreprocessSpec(size, ResizeFilter.BICUBIC, crop, floatArrayOf(0f, 0f, 0f), floatArrayOf(1f, 1f, 1f))

    @Test fun typicalPhotos() {
        // lite0/b0: short side kept >= 512. A 12 MP phone photo decodes at 1/4, a small one untouched.
        assertEquals(512, DraftDecode.minShortSide(spec(224, 0.875)))
        assertEquals(4, DraftDecode.sampleSize(4032, 3024, 512))
        assertEquals(4, DraftDecode.sampleSize(3024, 4032, 512))
        assertEquals(1, DraftDecode.sampleSize(1023, 2000, 512))
        assertEquals(2, DraftDecode.sampleSize(1024, 1024, 512))
        assertEquals(8, DraftDecode.sampleSize(12000, 9000, 512)) // 1/8 is as far as the SDK goes
        assertEquals(1, DraftDecode.sampleSize(100, 50, 512))
    }

    @Test(expected = ImageFormatException::class) fun emptyImageIsTyped() {
        DraftDecode.sampleSize(0, 10, 512)
    }

    /** Every variant's short side, as the SDK computes int(2 * size / crop_fraction). */
    @Test fun minShortSideOfEveryVariantMatchesPython() {
        val variants = Vectors.list(Vectors.obj(Vectors.manifest(), "draft"), "variants")
        for (v in variants) {
            assertEquals(v["variant"] as String, Vectors.int(v, "min_short_side"),
                DraftDecode.minShortSide(spec(Vectors.int(v, "size"), Vectors.double(v, "crop_fraction"))))
        }
        println("draft: minimum short side of ${variants.size} variants identical to Python's")
    }

    /** The decoded size Pillow's JPEG draft gives through edge.preprocess.open_image (or its header rule). */
    @Test fun sampleSizeGivesPillowsDraftSize() {
        val cases = Vectors.list(Vectors.obj(Vectors.manifest(), "draft"), "cases")
        for (c in cases) {
            val w = Vectors.int(c, "width")
            val h = Vectors.int(c, "height")
            val s = DraftDecode.sampleSize(w, h, Vectors.int(c, "min_short_side"))
            val what = "${w}x$h, short side >= ${c["min_short_side"]} (${c["how"]})"
            assertEquals(what, Vectors.int(c, "decoded_width"), (w + s - 1) / s)
            assertEquals(what, Vectors.int(c, "decoded_height"), (h + s - 1) / s)
        }
        println("draft: ${cases.size} photo sizes decode to Pillow's size")
    }
}
