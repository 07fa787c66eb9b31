package com.efficientnetedge.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.hardware.display.DisplayManager
import android.net.Uri
import android.os.Bundle
import android.provider.Settings
import android.util.Log
import android.view.OrientationEventListener
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.RadioGroup
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import com.efficientnetedge.core.Accelerator
import com.efficientnetedge.core.Backend
import com.efficientnetedge.core.DeviceRotation
import com.efficientnetedge.core.DraftDecode
import com.efficientnetedge.core.EdgeException
import com.efficientnetedge.core.GuardedExecutor
import com.efficientnetedge.core.RgbImage
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Live camera classification (CameraX ImageAnalysis, RGBA_8888, keep-only-latest) or a photo from the
 * picker, with a CPU / GPU / NNAPI selector; the status line always says what actually runs.
 *
 * Threading: everything that touches the model (loading, delegates, the RGBA→RGB copy, inference, the CPU
 * fallback, photo decoding) runs on [inference]: one thread, because the Interpreter is not thread-safe and
 * the GPU delegate is bound to its creating thread, behind one guard that catches every Throwable and shows
 * it on screen instead of letting it kill the app.
 */
class MainActivity : AppCompatActivity() {
    private val inferenceThread: ExecutorService = Executors.newSingleThreadExecutor()
    private val inference = GuardedExecutor(inferenceThread) { t ->
        Log.e(TAG, "inference task failed", t)
        val text = GuardedExecutor.describe(t)
        ui { resultsText.text = getString(R.string.error, text) }
    }

    // Owned by the inference thread.
    private var model: LoadedModel? = null
    private var classifier: Classifier? = null
    private var lastPhoto: Photo? = null
    private val recentMs = ArrayDeque<Double>()
    private var shownBackend: Backend? = null

    @Volatile private var liveMode = true

    // Owned by the main thread.
    private var analysis: ImageAnalysis? = null
    private var preview: Preview? = null
    private lateinit var orientationListener: OrientationEventListener

    private lateinit var previewView: PreviewView
    private lateinit var photoView: ImageView
    private lateinit var permissionPanel: LinearLayout
    private lateinit var permissionText: TextView
    private lateinit var grantButton: Button
    private lateinit var resultsText: TextView
    private lateinit var timingText: TextView
    private lateinit var backendText: TextView
    private lateinit var liveButton: Button

    private val cameraPermission =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else showPermissionDenied()
        }

    private val pickPhoto =
        registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri -> uri?.let(::classifyPhoto) }

    /**
     * The preview follows the display: the activity handles orientation changes itself (no recreation),
     * so CameraX's Preview is told when the display turns.
     */
    private val displayListener = object : DisplayManager.DisplayListener {
        override fun onDisplayAdded(displayId: Int) = Unit
        override fun onDisplayRemoved(displayId: Int) = Unit
        override fun onDisplayChanged(displayId: Int) {
            val display = previewView.display ?: return
            if (display.displayId == displayId) preview?.targetRotation = display.rotation
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        previewView = findViewById(R.id.preview)
        photoView = findViewById(R.id.photo)
        permissionPanel = findViewById(R.id.permission_panel)
        permissionText = findViewById(R.id.permission_text)
        grantButton = findViewById(R.id.grant)
        resultsText = findViewById(R.id.results)
        timingText = findViewById(R.id.timing)
        backendText = findViewById(R.id.backend)
        liveButton = findViewById(R.id.live)

        // The analysed frames follow the device, whatever the display does: the frame rotation CameraX
        // reports (and the pipeline applies) is then relative to how the phone is held.
        orientationListener = object : OrientationEventListener(this) {
            override fun onOrientationChanged(orientation: Int) {
                val rotation = DeviceRotation.targetRotation(orientation) ?: return // flat: keep the last one
                analysis?.targetRotation = rotation
            }
        }

        findViewById<RadioGroup>(R.id.accelerators).setOnCheckedChangeListener { _, id ->
            switchAccelerator(
                when (id) {
                    R.id.gpu -> Accelerator.GPU
                    R.id.nnapi -> Accelerator.NNAPI
                    else -> Accelerator.CPU
                }
            )
        }
        findViewById<Button>(R.id.pick).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        liveButton.setOnClickListener { showLive() }
        grantButton.setOnClickListener { onGrantClicked() }

        resultsText.setText(R.string.loading_model)
        inference.execute { loadModel(Accelerator.CPU) }

        if (hasCameraPermission()) startCamera() else cameraPermission.launch(Manifest.permission.CAMERA)
    }

    override fun onStart() {
        super.onStart()
        if (orientationListener.canDetectOrientation()) orientationListener.enable()
        getSystemService(DisplayManager::class.java).registerDisplayListener(displayListener, null)
    }

    override fun onStop() {
        orientationListener.disable()
        getSystemService(DisplayManager::class.java).unregisterDisplayListener(displayListener)
        super.onStop()
    }

    override fun onDestroy() {
        super.onDestroy()
        analysis?.clearAnalyzer()
        inference.execute {
            classifier?.close()
            classifier = null
        }
        inferenceThread.shutdown()
    }

    // ---- model and delegates (inference thread) ----

    private fun loadModel(accelerator: Accelerator) {
        val loaded = try {
            ModelLoader.load(this)
        } catch (e: ModelMissingException) {
            ui { resultsText.text = e.message; backendText.text = "" }
            return
        } catch (e: EdgeException) {
            ui { resultsText.text = getString(R.string.cannot_load_model, e.message); backendText.text = "" }
            return
        }
        model = loaded
        useClassifier(Classifier(loaded, accelerator))
    }

    private fun switchAccelerator(accelerator: Accelerator) = inference.execute {
        val loaded = model ?: return@execute
        classifier?.close()
        classifier = null
        useClassifier(Classifier(loaded, accelerator))
        if (!liveMode) lastPhoto?.let { classifyLoadedPhoto(it) }
    }

    private fun useClassifier(c: Classifier) {
        classifier = c
        recentMs.clear()
        showBackend(c)
    }

    private fun showBackend(c: Classifier) {
        val backend = c.backend
        shownBackend = backend
        val text = listOfNotNull(backend.describe, c.warning).joinToString("\n")
        ui { backendText.text = text }
    }

    private fun show(c: Classifier, result: Classification) {
        if (result.backendChanged) {
            recentMs.clear() // a fallback or NNAPI's CPU comparison ran inside this frame: not a typical time
        } else {
            recentMs.addLast(result.inferenceMs)
            if (recentMs.size > 30) recentMs.removeFirst()
        }
        if (result.backend != shownBackend) showBackend(c)
        val lines = result.top.joinToString("\n") {
            String.format(Locale.US, "%-26.26s %5.1f%%", it.label, it.score * 100)
        }
        val timing = if (recentMs.isEmpty()) {
            String.format(Locale.US, "first inference on %s: %.1f ms", result.backend.active.label, result.inferenceMs)
        } else {
            String.format(
                Locale.US, "inference %.1f ms (avg %.1f over %d) · preprocessing %.1f ms",
                result.inferenceMs, recentMs.average(), recentMs.size, result.preprocessMs
            )
        }
        ui { resultsText.text = lines; timingText.text = timing }
    }

    // ---- camera ----

    private fun hasCameraPermission() =
        ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED

    private fun startCamera() {
        permissionPanel.visibility = View.GONE
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            try {
                val provider = future.get()
                val preview = Preview.Builder().build().also { it.setSurfaceProvider(previewView.surfaceProvider) }
                val analysis = ImageAnalysis.Builder()
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .build()
                if (liveMode) analysis.setAnalyzer(inference, ::analyze)
                val selector = if (provider.hasCamera(CameraSelector.DEFAULT_BACK_CAMERA)) {
                    CameraSelector.DEFAULT_BACK_CAMERA
                } else {
                    CameraSelector.DEFAULT_FRONT_CAMERA
                }
                provider.unbindAll()
                provider.bindToLifecycle(this, selector, preview, analysis)
                this.preview = preview
                this.analysis = analysis
            } catch (e: Exception) {
                backendText.text = getString(R.string.no_camera, e.message)
            }
        }, ContextCompat.getMainExecutor(this))
    }

    /** One camera frame, on the inference thread. Frames that arrive while busy are dropped by CameraX. */
    private fun analyze(proxy: ImageProxy) {
        proxy.use {
            val c = classifier
            if (!liveMode || c == null) return
            val plane = proxy.planes[0]
            val frame = RgbImage.fromRgba(plane.buffer, proxy.width, proxy.height, plane.rowStride, plane.pixelStride)
            val result = c.classifyFrame(frame, proxy.imageInfo.rotationDegrees)
            if (liveMode) show(c, result)
        }
    }

    private fun showPermissionDenied() {
        val forever = !shouldShowRequestPermissionRationale(Manifest.permission.CAMERA)
        permissionText.setText(if (forever) R.string.camera_denied_forever else R.string.camera_denied)
        grantButton.setText(if (forever) R.string.open_settings else R.string.grant)
        grantButton.tag = forever
        permissionPanel.visibility = View.VISIBLE
    }

    private fun onGrantClicked() {
        if (grantButton.tag == true) {
            startActivity(Intent(Settings.ACTION_APPLICATION_DETAILS_SETTINGS, Uri.fromParts("package", packageName, null)))
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA)
        }
    }

    override fun onResume() {
        super.onResume()
        // Back from the settings screen with the permission now granted.
        if (permissionPanel.visibility == View.VISIBLE && hasCameraPermission()) startCamera()
    }

    // ---- photos ----

    private fun classifyPhoto(uri: Uri) {
        liveMode = false
        analysis?.clearAnalyzer() // no frames are converted or classified while a photo is shown
        liveButton.isEnabled = true
        inference.execute {
            val spec = model?.pkg?.info?.spec
            if (spec == null || classifier == null) {
                ui { resultsText.setText(R.string.no_model_for_photo) }
                return@execute
            }
            // Decoded at 1/2, 1/4 or 1/8 scale while the short side stays >= 2x the crop the model sees.
            // An OutOfMemoryError still goes to the executor's guard.
            val photo = try {
                PhotoLoader.load(contentResolver, uri, DraftDecode.minShortSide(spec))
            } catch (e: Exception) {
                ui { resultsText.text = getString(R.string.cannot_read_photo, e.message ?: e.javaClass.simpleName) }
                return@execute
            }
            lastPhoto = photo
            ui {
                photoView.setImageBitmap(photo.bitmap)
                photoView.visibility = View.VISIBLE
            }
            classifyLoadedPhoto(photo)
        }
    }

    private fun classifyLoadedPhoto(photo: Photo) {
        val c = classifier ?: return
        recentMs.clear()
        show(c, c.classifyPhoto(photo.upright))
    }

    private fun showLive() {
        liveMode = true
        liveButton.isEnabled = false
        photoView.visibility = View.GONE
        photoView.setImageDrawable(null)
        inference.execute { lastPhoto = null; recentMs.clear() }
        analysis?.setAnalyzer(inference, ::analyze)
    }

    private fun ui(block: () -> Unit) = runOnUiThread { block() }

    private companion object {
        const val TAG = "EdgeDemo"
    }
}
