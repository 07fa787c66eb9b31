package com.efficientnetedge.core

/**
 * The SDK's preprocessing for one model, on the JVM: upright the image (camera rotation or EXIF), take the
 * centred crop of `spec.cropFraction` of the short side, resize it to `spec.size` with Pillow's filter.
 * Mirrors `edge.preprocess.preprocess`. Keep one instance per thread (it caches resize coefficients).
 */
class ImagePipeline(val spec: PreprocessSpec) {
    private val resizer = PillowResizer(spec.resizeFilter)

    /** Crop + resize an upright image to spec.size x spec.size. */
    fun cropAndResize(upright: RgbImage): RgbImage {
        val box = centerCropBox(upright.width, upright.height, spec.cropFraction)
        return resizer.resize(upright, spec.size, spec.size, box)
    }

    /** A camera frame: rotate clockwise by [rotationDegrees] first. */
    fun fromCamera(frame: RgbImage, rotationDegrees: Int): RgbImage =
        cropAndResize(Orientation.rotateClockwise(frame, rotationDegrees))

    /** A decoded photo with its EXIF orientation tag (1 = upright). */
    fun fromPhoto(decoded: RgbImage, exifOrientation: Int): RgbImage =
        cropAndResize(Orientation.applyExif(decoded, exifOrientation))
}
