package com.efficientnetedge.core

import com.efficientnetedge.core.DeviceRotation.ROTATION_0
import com.efficientnetedge.core.DeviceRotation.ROTATION_180
import com.efficientnetedge.core.DeviceRotation.ROTATION_270
import com.efficientnetedge.core.DeviceRotation.ROTATION_90
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class DeviceRotationTest {
    /** CameraX's UseCase.snapToSurfaceRotation thresholds, at every boundary. */
    @Test fun deviceDegreesSnapLikeCameraX() {
        val expected = mapOf(
            0 to ROTATION_0, 44 to ROTATION_0, 45 to ROTATION_270, 90 to ROTATION_270, 134 to ROTATION_270,
            135 to ROTATION_180, 180 to ROTATION_180, 224 to ROTATION_180, 225 to ROTATION_90, 270 to ROTATION_90,
            314 to ROTATION_90, 315 to ROTATION_0, 359 to ROTATION_0
        )
        for ((degrees, rotation) in expected) assertEquals("$degrees°", rotation, DeviceRotation.targetRotation(degrees))
        assertNull("flat on a table: keep the current rotation", DeviceRotation.targetRotation(DeviceRotation.ORIENTATION_UNKNOWN))
        for (bad in listOf(360, -2)) {
            try {
                DeviceRotation.targetRotation(bad)
                throw AssertionError("accepted $bad")
            } catch (e: IllegalArgumentException) {
                // expected
            }
        }
    }

    /** The examples of Android's "CameraX use case rotations" guide (target rotation = display rotation). */
    @Test fun frameRotationMatchesTheCameraXGuideExamples() {
        // Pixel 3 XL, back sensor at 90°: portrait → 90, landscape (display rotation 90) → 0.
        assertEquals(90, DeviceRotation.frameRotationDegrees(90, ROTATION_0, backFacing = true))
        assertEquals(0, DeviceRotation.frameRotationDegrees(90, ROTATION_90, backFacing = true))
        // Nexus 5X, sensor at 270°: 270 and 180.
        assertEquals(270, DeviceRotation.frameRotationDegrees(270, ROTATION_0, backFacing = true))
        assertEquals(180, DeviceRotation.frameRotationDegrees(270, ROTATION_90, backFacing = true))
        // Pixel C tablet, sensor at 0°: 0, and 90 in portrait (display rotation 270).
        assertEquals(0, DeviceRotation.frameRotationDegrees(0, ROTATION_0, backFacing = true))
        assertEquals(90, DeviceRotation.frameRotationDegrees(0, ROTATION_270, backFacing = true))
    }

    /**
     * The whole chain against the sample in Android's CaptureRequest.JPEG_ORIENTATION documentation, which
     * computes the same rotation straight from the device degrees: round to a multiple of 90, negate for a
     * front camera, add the sensor orientation.
     */
    @Test fun chainAgreesWithTheCamera2JpegOrientationFormulaForEveryDegree() {
        for (sensor in listOf(0, 90, 180, 270)) for (back in listOf(true, false)) for (d in 0..359) {
            var device = (d + 45) / 90 * 90
            if (!back) device = -device
            val jpeg = (sensor + device + 360) % 360
            val chain = DeviceRotation.frameRotationDegrees(sensor, DeviceRotation.targetRotation(d)!!, back)
            assertEquals("sensor $sensor, ${if (back) "back" else "front"}, device at $d°", jpeg, chain)
        }
    }

    /**
     * All four ways to hold the phone: the raw sensor frame of an upright scene, rotated by what the chain
     * says, is the upright scene again. A camera turns with the phone, so a back camera on a phone turned
     * d° clockwise sees the scene turned d° counter-clockwise, and its sensor (mounted at `sensor` degrees)
     * adds its own turn; a front camera looks the other way, so the phone's turn counts the other way.
     */
    @Test fun everyPhoneOrientationGivesAnUprightFrame() {
        val scene = RgbImage(3, 2, ByteArray(3 * 2 * 3) { (it * 11).toByte() }) // no symmetry
        for (sensor in listOf(0, 90, 180, 270)) {
            for ((held, listenerDegrees) in listOf(0 to 3, 90 to 100, 180 to 181, 270 to 300)) {
                for (back in listOf(true, false)) {
                    val raw = Orientation.rotateClockwise(scene, if (back) -(held + sensor) else held - sensor)
                    val target = DeviceRotation.targetRotation(listenerDegrees)!!
                    val upright = Orientation.rotateClockwise(raw, DeviceRotation.frameRotationDegrees(sensor, target, back))
                    val what = "sensor $sensor, ${if (back) "back" else "front"}, phone at $held° (listener $listenerDegrees°)"
                    assertEquals(what, scene.width, upright.width)
                    assertArrayEquals(what, scene.pixels, upright.pixels)
                }
            }
        }
    }

    @Test fun surfaceRotationDegrees() {
        assertEquals(listOf(0, 90, 180, 270), listOf(ROTATION_0, ROTATION_90, ROTATION_180, ROTATION_270).map { DeviceRotation.degrees(it) })
    }
}
