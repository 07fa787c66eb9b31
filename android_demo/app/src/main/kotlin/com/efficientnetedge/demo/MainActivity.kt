package com.efficientnetedge.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import android.provider.Settings
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
import com.efficientnetedge.core.RgbImage
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Live camera classification (CameraX ImageAnalysis, RGBA_8888, keep-only-latest) or a photo from the
 * picker, with a CPU / GPU / NNAPI selector that always shows what actually runs.
 *
 * Threading: everything that touches the model (loading, delegates, inference) runs on [inference], one
 * thread, because the Interpreter is not thread-safe and the GPU delegate is bound to its creating thread.
 */
class MainActivity : AppCompatActivity() {
    private val inference: ExecutorService = Executors.newSingleThreadExecutor()

    // Owned by the inference thread.
    private var model: LoadedModel? = null
    private var classifier: Classifier? = null
    private var lastPhoto: Photo? = null
    private val recentMs = ArrayDeque<Double>()

    @Volatile private var liveMode = true

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

    override fun onDestroy() {
        super.onDestroy()
        inference.execute {
            classifier?.close()
            classifier = null
        }
        inference.shutdown()
    }

    // ---- model and delegates (inference thread) ----

    private fun loadModel(accelerator: Accelerator) {
        try {
            val loaded = ModelLoader.load(this)
            model = loaded
            useClassifier(Classifier.create(loaded, accelerator))
        } catch (e: Exception) {
            ui { resultsText.text = "Cannot load the model:\n${e.message}"; backendText.text = "" }
        }
    }

    private fun switchAccelerator(accelerator: Accelerator) = inference.execute {
        val loaded = model ?: return@execute
        classifier?.close()
        classifier = null
        try {
            useClassifier(Classifier.create(loaded, accelerator))
        } catch (e: Exception) {
            ui { resultsText.text = "Cannot run the model: ${e.message}" }
            return@execute
        }
        if (!liveMode) lastPhoto?.let { classifyLoadedPhoto(it) }
    }

    private fun useClassifier(c: Classifier) {
        classifier = c
        recentMs.clear()
        val text = listOfNotNull(c.backend.describe, c.warning).joinToString("\n")
        ui { backendText.text = text }
    }

    /** Run [block]; a delegate that fails at run time is replaced by CPU, and the screen says so. */
    private fun classifySafely(block: (Classifier) -> Classification): Classification? {
        val c = classifier ?: return null
        return try {
            block(c)
        } catch (e: DelegateUnavailableException) {
            c.close()
            classifier = null
            val loaded = model ?: return null
            useClassifier(Classifier.cpuFallback(loaded, c.backend.requested, e.message ?: "failed at run time"))
            null
        } catch (e: Exception) {
            ui { resultsText.text = "Inference failed: ${e.message}" }
            null
        }
    }

    private fun show(result: Classification) {
        recentMs.addLast(result.inferenceMs)
        if (recentMs.size > 30) recentMs.removeFirst()
        val avg = recentMs.average()
        val lines = result.top.joinToString("\n") {
            String.format(Locale.US, "%-26.26s %5.1f%%", it.label, it.score * 100)
        }
        val timing = String.format(
            Locale.US, "inference %.1f ms (avg %.1f over %d) · preprocessing %.1f ms",
            result.inferenceMs, avg, recentMs.size, result.preprocessMs
        )
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
                analysis.setAnalyzer(inference, ::analyze)
                val selector = if (provider.hasCamera(CameraSelector.DEFAULT_BACK_CAMERA)) {
                    CameraSelector.DEFAULT_BACK_CAMERA
                } else {
                    CameraSelector.DEFAULT_FRONT_CAMERA
                }
                provider.unbindAll()
                provider.bindToLifecycle(this, selector, preview, analysis)
            } catch (e: Exception) {
                backendText.text = getString(R.string.no_camera, e.message)
            }
        }, ContextCompat.getMainExecutor(this))
    }

    /** One camera frame, on the inference thread. Frames that arrive while busy are dropped by CameraX. */
    private fun analyze(proxy: ImageProxy) {
        proxy.use {
            if (!liveMode || classifier == null) return
            val plane = proxy.planes[0]
            val frame = RgbImage.fromRgba(plane.buffer, proxy.width, proxy.height, plane.rowStride, plane.pixelStride)
            val rotation = proxy.imageInfo.rotationDegrees
            classifySafely { it.classifyFrame(frame, rotation) }?.let { if (liveMode) show(it) }
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
        liveButton.isEnabled = true
        inference.execute {
            val spec = model?.pkg?.info?.spec
            if (spec == null || classifier == null) {
                ui { resultsText.text = "No model loaded: cannot classify the photo." }
                return@execute
            }
            try {
                // Decode at reduced scale, never below 2x the crop the model sees (the SDK's draft rule).
                val photo = PhotoLoader.load(contentResolver, uri, (2 * spec.size / spec.cropFraction).toInt())
                lastPhoto = photo
                ui {
                    photoView.setImageBitmap(photo.bitmap)
                    photoView.visibility = View.VISIBLE
                }
                classifyLoadedPhoto(photo)
            } catch (e: Exception) {
                ui { resultsText.text = "Cannot read that photo: ${e.message}" }
            }
        }
    }

    private fun classifyLoadedPhoto(photo: Photo) {
        recentMs.clear()
        classifySafely { it.classifyPhoto(photo.upright) }?.let(::show)
    }

    private fun showLive() {
        liveMode = true
        liveButton.isEnabled = false
        photoView.visibility = View.GONE
        photoView.setImageDrawable(null)
        inference.execute { lastPhoto = null; recentMs.clear() }
    }

    private fun ui(block: () -> Unit) = runOnUiThread { block() }
}
