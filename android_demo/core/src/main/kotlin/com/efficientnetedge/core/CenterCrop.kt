package com.efficientnetedge.core

/** A pixel rectangle [left, right) x [top, bottom), Pillow's `box` convention. */
data class CropBox(val left: Int, val top: Int, val right: Int, val bottom: Int) {
    val width: Int get() = right - left
    val height: Int get() = bottom - top

    companion object {
        fun full(width: Int, height: Int) = CropBox(0, 0, width, height)
    }
}

/**
 * The centred square crop, computed exactly as `edge.preprocess.center_crop_box` (and tensorflow/tpu):
 * `crop = int(fraction * min(w, h))`, `top = (h - crop + 1) // 2`, `left = (w - crop + 1) // 2`.
 */
fun centerCropBox(width: Int, height: Int, cropFraction: Double): CropBox {
    if (width <= 0 || height <= 0) throw ImageFormatException("image size must be positive, got ${width}x$height")
    val crop = maxOf(1, (cropFraction * minOf(width, height)).toInt())
    val top = Math.floorDiv(height - crop + 1, 2)
    val left = Math.floorDiv(width - crop + 1, 2)
    return CropBox(left, top, left + crop, top + crop)
}
