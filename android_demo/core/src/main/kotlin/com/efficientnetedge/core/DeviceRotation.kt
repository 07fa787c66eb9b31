package com.efficientnetedge.core

/**
 * The rotation chain that keeps camera frames upright when the phone turns: the device's physical
 * orientation (`OrientationEventListener` degrees) → the target rotation given to CameraX's
 * `ImageAnalysis.setTargetRotation` (an `android.view.Surface.ROTATION_*` value) → the clockwise rotation
 * CameraX then reports for each frame (`ImageInfo.getRotationDegrees`), which [ImagePipeline.fromCamera]
 * applies. Pure Kotlin: the constants below have the values of Android's.
 */
object DeviceRotation {
    const val ROTATION_0 = 0
    const val ROTATION_90 = 1
    const val ROTATION_180 = 2
    const val ROTATION_270 = 3

    /** `OrientationEventListener.ORIENTATION_UNKNOWN`: the phone lies flat, no orientation can be told. */
    const val ORIENTATION_UNKNOWN = -1

    /**
     * The target rotation for a device turned [orientationDegrees] clockwise from its natural orientation
     * (0–359, as `OrientationEventListener.onOrientationChanged` reports it), snapped to the nearest quarter
     * turn exactly as CameraX's `UseCase.snapToSurfaceRotation`: [315, 45) → ROTATION_0, [45, 135) →
     * ROTATION_270, [135, 225) → ROTATION_180, [225, 315) → ROTATION_90. (Turning the device clockwise turns
     * the display counter-clockwise relative to it.) Null for [ORIENTATION_UNKNOWN]: keep the current one.
     *
     * @throws IllegalArgumentException for any other value outside 0–359.
     */
    fun targetRotation(orientationDegrees: Int): Int? {
        if (orientationDegrees == ORIENTATION_UNKNOWN) return null
        require(orientationDegrees in 0..359) { "orientation must be 0..359 or ORIENTATION_UNKNOWN, got $orientationDegrees" }
        return when {
            orientationDegrees >= 315 || orientationDegrees < 45 -> ROTATION_0
            orientationDegrees >= 225 -> ROTATION_90
            orientationDegrees >= 135 -> ROTATION_180
            else -> ROTATION_270
        }
    }

    /** A `Surface.ROTATION_*` value in degrees (counter-clockwise turn of the display). */
    fun degrees(surfaceRotation: Int): Int = when (surfaceRotation) {
        ROTATION_0 -> 0
        ROTATION_90 -> 90
        ROTATION_180 -> 180
        ROTATION_270 -> 270
        else -> throw IllegalArgumentException("not a Surface rotation: $surfaceRotation")
    }

    /**
     * The clockwise rotation that makes a frame upright for [targetRotation]: what CameraX reports as
     * `ImageInfo.rotationDegrees` (its `CameraOrientationUtil.getRelativeImageRotation`). A back camera faces
     * away from the screen, so the target rotation counts against the sensor's; a front camera, with it.
     *
     * @param sensorOrientation `CameraCharacteristics.SENSOR_ORIENTATION` (0, 90, 180, 270)
     */
    fun frameRotationDegrees(sensorOrientation: Int, targetRotation: Int, backFacing: Boolean): Int {
        require(sensorOrientation in listOf(0, 90, 180, 270)) { "sensor orientation must be 0, 90, 180 or 270, got $sensorOrientation" }
        val target = degrees(targetRotation)
        return if (backFacing) (sensorOrientation - target + 360) % 360 else (sensorOrientation + target) % 360
    }
}
