package com.efficientnetedge.core

/**
 * How big photos are decoded at reduced scale before the model's crop: the SDK's draft rule
 * (`edge.preprocess.preprocess(draft=True)`), which keeps the short side at least twice the crop the model
 * sees, so the resize that follows still has the pixels it needs. On Android the scale becomes
 * `BitmapFactory.Options.inSampleSize`; a 12 MP photo then decodes at 1/4 (~3 MB instead of ~48 MB).
 */
object DraftDecode {
    /** libjpeg's DCT scaling, and so Pillow's `draft`, goes no further than 1/8. */
    const val MAX_SCALE = 8

    /** The short side a drafted photo keeps: `int(2 * spec.size / spec.crop_fraction)`, as the SDK computes it. */
    fun minShortSide(spec: PreprocessSpec): Int = (2.0 * spec.size / spec.cropFraction).toInt()

    /**
     * The decode scale (1, 2, 4 or 8) for a [width]x[height] photo, computed as Pillow's
     * `JpegImageFile.draft` does for the size the SDK asks for: the requested size is the photo scaled so
     * its short side is [minShortSide], and the scale is the largest of 8, 4, 2, 1 not above
     * `min(width // requested_w, height // requested_h)`. The decoded size is then `ceil(side / scale)`.
     *
     * @throws ImageFormatException for a non-positive size.
     */
    fun sampleSize(width: Int, height: Int, minShortSide: Int): Int {
        if (width <= 0 || height <= 0) throw ImageFormatException("image size must be positive, got ${width}x$height")
        if (minShortSide <= 0) return 1
        val scale = maxOf(1.0, minOf(width, height).toDouble() / minShortSide)
        val requestedW = maxOf(1, (width / scale).toInt())
        val requestedH = maxOf(1, (height / scale).toInt())
        val fits = minOf(width / requestedW, height / requestedH)
        var s = MAX_SCALE
        while (s > 1 && fits < s) s /= 2
        return s
    }
}
