"""Export Resemblyzer's GE2E voice encoder to ONNX, and the references the tests compare with.

Run once by a maintainer, in a throw-away env that has torch (the project's envs never
install torch for ``diarize``; uv's cache already holds it from the ``pyannote`` env)::

    uv run --no-project --with resemblyzer==0.1.4 --with "setuptools<81" --with onnx \\
        --with onnxruntime --with torch python tools/export_speaker_model.py [--check]

(Resemblyzer's webrtcvad imports pkg_resources, which setuptools 81 removed.) With
``--references``, also add ``--with silero-vad==6.2.3 --with scikit-learn``.

It writes ``src/signal4/stepkit/models/voice_encoder.onnx`` from the ``pretrained.pt``
shipped in the Resemblyzer 0.1.4 wheel (Apache-2.0, (c) 2019 Resemble.AI; see that folder's
NOTICE), checks the file's SHA-256 against the one recorded below, and checks the ONNX
model against Resemblyzer's own torch forward pass. ``--check`` writes nothing: it exports
to memory and compares with the committed file (exit 1 if they differ).

``--references`` also writes what the tests compare the torch-free code with, made by the
original libraries (``tests/fixtures/speakers/``): Resemblyzer's mel spectrogram of a known
signal, its embedding of one turn of the bundled sample and its partial slices; the
official silero-vad's speech probabilities and regions of the sample, and its
``get_speech_timestamps_from_probs`` on made-up probabilities; scikit-learn's
average-linkage partitions and silhouettes of the sample's window embeddings.

The graph is built by hand with ``onnx.helper`` (no torch exporter): it is small, and the
same weights always give the same bytes, so a re-export can be compared with the committed
file. The model:

* input ``mels``: float32 [batch, frames, 40] (Resemblyzer's mel spectrogram frames);
* three LSTM layers of 256 units (ONNX ``LSTM`` wants time first: one Transpose in front);
* output ``embeds``: float32 [batch, 256] = L2-normalised relu(linear(last hidden state of
  layer 3)), opset 17.

torch orders an LSTM's four gates i, f, g, o in its weight and bias rows; ONNX orders them
i, o, f, c (c is torch's g), so the rows are reordered on the way.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "src" / "signal4" / "stepkit" / "models" / "voice_encoder.onnx"
REFERENCES = ROOT / "tests" / "fixtures" / "speakers"
SAMPLE = ROOT / "samples" / "two_speakers" / "audio.wav"

#: The source: Resemblyzer-0.1.4-py3-none-any.whl (PyPI), and the weights file inside it.
WHEEL = "Resemblyzer-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f"
WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"

OPSET = 17
MELS = 40
HIDDEN = 256
LAYERS = 3
EMBEDDING = 256
PRODUCER = "signal4 tools/export_speaker_model.py"


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_path() -> Path:
    """The installed Resemblyzer's ``pretrained.pt``, checked against the recorded SHA-256."""
    import resemblyzer

    path = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"
    found = sha256(path)
    if found != WEIGHTS_SHA256:
        raise SystemExit(
            f"{path} has SHA-256 {found}, not {WEIGHTS_SHA256} (the one in {WHEEL}); "
            "install resemblyzer==0.1.4"
        )
    return path


def load_state(path: Path) -> dict[str, Any]:
    """The encoder's weights as float32 numpy arrays, by torch parameter name."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return {
        k: v.detach().cpu().numpy().astype("float32") for k, v in checkpoint["model_state"].items()
    }


def _onnx_gates(rows: Any) -> Any:
    """Reorder an LSTM's gate blocks from torch's (i, f, g, o) to ONNX's (i, o, f, c)."""
    import numpy as np

    i, f, g, o = np.split(rows, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build_model(state: dict[str, Any]) -> Any:
    """The ONNX ModelProto of the encoder with ``state``'s weights (deterministic)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = []
    nodes = [helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2], name="time_first")]
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_dir"))
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axis_layer"))
    x = "x0"
    for layer in range(LAYERS):
        w = _onnx_gates(state[f"lstm.weight_ih_l{layer}"])[None]
        r = _onnx_gates(state[f"lstm.weight_hh_l{layer}"])[None]
        b = np.concatenate(
            [
                _onnx_gates(state[f"lstm.bias_ih_l{layer}"]),
                _onnx_gates(state[f"lstm.bias_hh_l{layer}"]),
            ]
        )[None]
        for name, value in (("W", w), ("R", r), ("B", b)):
            inits.append(numpy_helper.from_array(value.astype(np.float32), f"lstm{layer}.{name}"))
        last = layer == LAYERS - 1
        outputs = ["", f"h{layer}"] if last else [f"y{layer}"]
        nodes.append(
            helper.make_node(
                "LSTM",
                [x, f"lstm{layer}.W", f"lstm{layer}.R", f"lstm{layer}.B"],
                outputs,
                hidden_size=HIDDEN,
                name=f"lstm{layer}",
            )
        )
        if not last:  # Y is [time, directions, batch, hidden]: drop the direction axis
            nodes.append(helper.make_node("Squeeze", [f"y{layer}", "axis_dir"], [f"x{layer + 1}"]))
            x = f"x{layer + 1}"
    inits.append(numpy_helper.from_array(state["linear.weight"], "linear.W"))
    inits.append(numpy_helper.from_array(state["linear.bias"], "linear.B"))
    nodes += [
        # Y_h of the last layer is [directions, batch, hidden]
        helper.make_node("Squeeze", [f"h{LAYERS - 1}", "axis_layer"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "linear.W", "linear.B"], ["linear"], transB=1),
        helper.make_node("Relu", ["linear"], ["raw"]),
        helper.make_node("ReduceL2", ["raw"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Div", ["raw", "norm"], ["embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "ge2e_voice_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", MELS])],
        [helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", EMBEDDING])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        doc_string=(
            f"Resemblyzer 0.1.4 GE2E voice encoder ({WHEEL}, sha256 {WHEEL_SHA256}); "
            "Apache-2.0, (c) 2019 Resemble.AI"
        ),
    )
    model.ir_version = 8  # opset 17's IR; readable by every onnxruntime >= 1.13
    onnx.checker.check_model(model, full_check=True)
    return model


def torch_embeds(mels: Any) -> Any:
    """Resemblyzer's own forward pass on a batch of mel frames."""
    import torch
    from resemblyzer import VoiceEncoder

    encoder = VoiceEncoder("cpu", verbose=False)
    with torch.no_grad():
        return encoder(torch.from_numpy(mels)).numpy()


def known_signal() -> Any:
    """A fixed half-second test signal: two tones, a chirp and a click, float32 in [-1, 1]."""
    import numpy as np

    t = np.arange(8000, dtype=np.float64) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t)
    x += 0.2 * np.sin(2 * np.pi * (300 * t + 3000 * t * t))
    x[4000] += 0.5
    return x.astype(np.float32)


def sample_turn() -> Any:
    """The bundled sample's first turn (1.2 s .. 3.2 s) as float32."""
    import wave

    import numpy as np

    with wave.open(str(SAMPLE), "rb") as w:
        pcm = w.readframes(w.getnframes())
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return audio[int(1.2 * 16000) : int(3.2 * 16000)]


def read_sample() -> Any:
    """The bundled sample as float32 samples."""
    import wave

    import numpy as np

    with wave.open(str(SAMPLE), "rb") as w:
        pcm = w.readframes(w.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def sample_windows(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """1.5 s windows every 0.75 s inside each region (the diarizer's windows), in samples."""
    out = []
    for start, end in regions:
        t = start
        while True:
            w_end = min(t + 24_000, end)
            out.append((t, w_end))
            if w_end >= end:
                break
            t += 12_000
    return out


#: Made-up probability sequences and options for get_speech_timestamps_from_probs.
VAD_CASES: list[tuple[str, list[float], dict[str, Any]]] = [
    ("short burst dropped", [0.1] * 5 + [0.9] * 4 + [0.1] * 10, {}),
    ("two regions", [0.1] * 3 + [0.8] * 20 + [0.1] * 8 + [0.7] * 15 + [0.2] * 3, {}),
    ("short dip kept", [0.9] * 20 + [0.2] * 2 + [0.9] * 20, {}),
    ("hysteresis", [0.9] * 10 + [0.4] * 10 + [0.9] * 10 + [0.1] * 10, {}),
    ("speech to the end", [0.1] * 4 + [0.9] * 30, {}),
    ("padding merges", [0.9] * 12 + [0.1] * 4 + [0.9] * 12, {"min_silence_duration_ms": 50}),
    ("max speech split", ([0.9] * 40 + [0.1] * 4) * 4, {"max_speech_duration_s": 2.5}),
    (
        "max speech, last silence",
        ([0.9] * 40 + [0.1] * 4) * 4,
        {"max_speech_duration_s": 2.5, "use_max_poss_sil_at_max_speech": False},
    ),
    ("max speech, no silence", [0.9] * 200, {"max_speech_duration_s": 2.0}),
    ("threshold", [0.1, 0.3, 0.6, 0.6, 0.3] * 20, {"threshold": 0.25, "speech_pad_ms": 0}),
]


def write_references(folder: Path) -> None:
    """Every reference the tests compare with, made by the original libraries."""
    import json

    import numpy as np
    from resemblyzer import VoiceEncoder, audio
    from silero_vad import get_speech_timestamps, get_speech_timestamps_from_probs, load_silero_vad
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    folder.mkdir(parents=True, exist_ok=True)
    signal = known_signal()
    encoder = VoiceEncoder("cpu", verbose=False)
    sample = read_sample()

    vad = load_silero_vad(onnx=True)
    probs = vad.audio_forward(torch_tensor(sample), 16_000)[0].numpy().astype(np.float32)
    regions = [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(sample, vad)]
    windows = sample_windows(regions)
    embeds = np.stack([encoder.embed_utterance(sample[a : max(b, a + 1600)]) for a, b in windows])
    labels, scores = [], []
    for k in range(2, 9):
        found = AgglomerativeClustering(
            n_clusters=k, metric="cosine", linkage="average"
        ).fit_predict(embeds)
        labels.append(found)
        scores.append(silhouette_score(embeds, found, metric="cosine"))
    lengths = [100, 1600, 16_000, 24_000, 25_600, 32_000, 38_000, 50_000, 123_457]
    np.savez_compressed(
        folder / "references.npz",
        signal=signal,
        mel=audio.wav_to_mel_spectrogram(signal),
        turn_embedding=encoder.embed_utterance(sample_turn()),
        vad_probs=probs,
        vad_regions=np.array(regions, dtype=np.int64),
        window_bounds=np.array(windows, dtype=np.int64),
        window_embeddings=embeds,
        sklearn_labels=np.stack(labels),
        sklearn_silhouettes=np.array(scores),
        slice_lengths=np.array(lengths),
        slice_bounds=np.array(
            [
                [(m.start, m.stop) for m in VoiceEncoder.compute_partial_slices(n, 1.3, 0.75)[1]]
                + [(-1, -1)] * (12 - len(VoiceEncoder.compute_partial_slices(n, 1.3, 0.75)[1]))
                for n in lengths
            ]
        ),
    )
    cases = [
        {
            "name": name,
            "probs": probs_case,
            "n_samples": len(probs_case) * 512,
            "options": options,
            "expected": [
                [int(r["start"]), int(r["end"])]
                for r in get_speech_timestamps_from_probs(
                    probs_case, audio_length_samples=len(probs_case) * 512, **options
                )
            ],
        }
        for name, probs_case, options in VAD_CASES
    ]
    (folder / "vad_cases.json").write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {folder / 'references.npz'} and {folder / 'vad_cases.json'}")


def torch_tensor(samples: Any) -> Any:
    """A torch tensor of a numpy array."""
    import torch

    return torch.from_numpy(samples.copy())


def check(model_path: Path) -> float:
    """Lowest cosine between the ONNX model's and torch's embeddings of random mel batches."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 1.0
    for frames in (160, 37):
        mels = rng.random((5, frames, MELS), dtype=np.float32) * 2.0
        ours = session.run(["embeds"], {"mels": mels})[0]
        theirs = torch_embeds(mels)
        worst = min(worst, float(np.min(np.sum(ours * theirs, axis=1))))
    return worst


def main(argv: list[str] | None = None) -> int:
    """Export the model (or check the committed one); with --references, the references."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL, help=f"default: {MODEL}")
    parser.add_argument(
        "--check", action="store_true", help="compare a fresh export with --out; write nothing"
    )
    parser.add_argument(
        "--references", action="store_true", help=f"also write {REFERENCES.relative_to(ROOT)}/"
    )
    args = parser.parse_args(argv)
    model = build_model(load_state(weights_path()))
    data = model.SerializeToString()
    if args.check:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(f"{args.out}: {'matches' if same else 'DIFFERS from'} a fresh export")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} (sha256 {sha256(args.out)})")
    worst = check(args.out)
    print(f"lowest cosine, onnxruntime against torch: {worst:.9f}")
    if worst < 0.9999:
        print("the ONNX model does not match Resemblyzer's torch model", file=sys.stderr)
        return 1
    if args.references:
        write_references(REFERENCES)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
