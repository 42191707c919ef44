"""Torch-free speaker diarization: Silero VAD and a GE2E voice encoder on onnxruntime.

* :mod:`.runtime` -- the model files, the CPU budget (``SIGNAL4_THREADS``), ONNX sessions;
* :mod:`.vad` -- Silero VAD's official ONNX model and a numpy port of its timestamps;
* :mod:`.mel` -- Resemblyzer's mel spectrogram in numpy;
* :mod:`.encoder` -- Resemblyzer's GE2E voice encoder (exported to ONNX) and its partials;
* :mod:`.cluster` -- average-linkage clustering, the silhouette, the speaker count;
* :mod:`.diarizer` -- the whole: speech regions, windows, clusters, turns.

Importing this package is cheap; numpy, scipy and onnxruntime are imported by the modules
that use them.
"""
