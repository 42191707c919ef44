"""The model files, the CPU budget and ONNX Runtime sessions of the speaker modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from signal4.stepkit.step import cpu_budget

__all__ = ["cpu_budget", "session"]

MODELS = Path(__file__).resolve().parents[1] / "models"
#: Silero VAD 6.2.3's "sequence" model, copied unchanged from the official wheel.
VAD_MODEL = MODELS / "silero_vad_16k_sequence.onnx"
VAD_SHA256 = "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"
#: Resemblyzer 0.1.4's GE2E voice encoder, exported by tools/export_speaker_model.py.
ENCODER_MODEL = MODELS / "voice_encoder.onnx"
ENCODER_SHA256 = "8009a47a1fa0b9d49c1e91c8f11492169929a95d1117ae95202239be70cafe7c"
#: pyannote's segmentation-3.0, exported by tools/export_diarization_models.py.
SEGMENTATION_MODEL = MODELS / "segmentation.onnx"
SEGMENTATION_SHA256 = "200d0486d70ac0f1c30b2820cf62504fa03b19ab6fa92ef797df4bd1e7574b2f"
#: 3D-Speaker's CAM++ (zh-en common advanced) in two halves, exported by the same script.
FRAMES_MODEL = MODELS / "speaker_frames.onnx"
FRAMES_SHA256 = "9e65e38118e7b560b0c24899df03669731313fb15ddb480ffb2ecc9fca52d130"
HEAD_MODEL = MODELS / "speaker_head.onnx"
HEAD_SHA256 = "3df87c75e4372e3a91f83b61f31ab4e18965343b0a52fb077b48242b65f56558"
#: The voice prints' model, as diarization.json names it: the digest is the SHA-256 of the
#: two halves' files one after the other (``cat speaker_frames.onnx speaker_head.onnx``).
EMBEDDING_ID = {
    "name": "CAM++ speech_campplus_sv_zh_en_16k-common_advanced (3D-Speaker), 192-d, ONNX",
    "digest": "sha256:eb3997bbefb2aeb5ae0a426f70bcaff338b31f5f8dbfdda9f2ff522b45d11322",
}


def session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session of the model at ``path``, on ``threads`` threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ORT's threads spin between ops by default; a step that shares its CPUs should not
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
