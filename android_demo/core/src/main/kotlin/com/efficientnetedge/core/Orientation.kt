package com.efficientnetedge.core

/** Whole-image rotations and flips: camera frame rotation and EXIF orientation, as Pillow applies them. */
object Orientation {

    /**
     * Rotate clockwise by [degrees] (0, 90, 180, 270; CameraX's `imageInfo.rotationDegrees` means exactly
     * this: the clockwise rotation that makes the frame upright).
     */
    fun rotateClockwise(image: RgbImage, degrees: Int): RgbImage = when (((degrees % 360) + 360) % 360) {
        0 -> image
        90 -> remap(image, image.height, image.width) { x, y, _, h -> y to (h - 1 - x) }
        180 -> remap(image, image.width, image.height) { x, y, w, h -> (w - 1 - x) to (h - 1 - y) }
        270 -> remap(image, image.height, image.width) { x, y, w, _ -> (w - 1 - y) to x }
        else -> throw ImageFormatException("rotation must be a multiple of 90 degrees, got $degrees")
    }

    /**
     * Apply an EXIF `Orientation` tag value (1–8) the way Pillow's `ImageOps.exif_transpose` does, so the
     * result is the upright image. Unknown values leave the image as it is (Pillow does the same).
     */
    fun applyExif(image: RgbImage, orientation: Int): RgbImage = when (orientation) {
        2 -> remap(image, image.width, image.height) { x, y, w, _ -> (w - 1 - x) to y } // FLIP_LEFT_RIGHT
        3 -> rotateClockwise(image, 180)
        4 -> remap(image, image.width, image.height) { x, y, _, h -> x to (h - 1 - y) } // FLIP_TOP_BOTTOM
        5 -> remap(image, image.height, image.width) { x, y, _, _ -> y to x } // TRANSPOSE
        6 -> rotateClockwise(image, 90)
        7 -> remap(image, image.height, image.width) { x, y, w, h -> (w - 1 - y) to (h - 1 - x) } // TRANSVERSE
        8 -> rotateClockwise(image, 270)
        else -> image
    }

    /** Build an [outW]x[outH] image whose pixel (x, y) is the source pixel [source] returns (w, h: source size). */
    private inline fun remap(
        image: RgbImage, outW: Int, outH: Int, source: (x: Int, y: Int, w: Int, h: Int) -> Pair<Int, Int>
    ): RgbImage {
        val src = image.pixels
        val out = ByteArray(outW * outH * 3)
        var o = 0
        for (y in 0 until outH) {
            for (x in 0 until outW) {
                val (sx, sy) = source(x, y, image.width, image.height)
                val i = (sy * image.width + sx) * 3
                out[o] = src[i]
                out[o + 1] = src[i + 1]
                out[o + 2] = src[i + 2]
                o += 3
            }
        }
        return RgbImage(outW, outH, out)
    }
}
