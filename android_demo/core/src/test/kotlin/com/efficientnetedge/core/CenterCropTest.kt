package com.efficientnetedge.core

import org.junit.Assert.assertEquals
import org.junit.Test

class CenterCropTest {
    /** Expected values from edge.preprocess.center_crop_box (Python). */
    @Test fun matchesPythonArithmetic() {
        assertEquals(CropBox(95, 19, 357, 281), centerCropBox(451, 300, 0.875))
        assertEquals(CropBox(32, 32, 480, 480), centerCropBox(512, 512, 0.875))
        assertEquals(CropBox(32, 76, 480, 524), centerCropBox(512, 600, 0.875))
        assertEquals(CropBox(1, 0, 2, 1), centerCropBox(3, 1, 0.875)) // crop never below 1 pixel
        assertEquals(CropBox(0, 0, 4, 4), centerCropBox(4, 4, 1.0))
    }

    @Test fun oddRemainderRoundsUpLikeTpu() {
        // (h - crop + 1) // 2: one spare row goes to the top offset
        val b = centerCropBox(10, 11, 0.9) // crop = int(9.0) = 9, top = (11-9+1)//2 = 1, left = (10-9+1)//2 = 1
        assertEquals(CropBox(1, 1, 10, 10), b)
    }

    @Test(expected = ImageFormatException::class) fun rejectsEmptyImage() {
        centerCropBox(0, 10, 0.875)
    }
}
