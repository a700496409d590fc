"""Batched beam search against a per-video loop: captions per second of `SALSTM.beam_search`.

Two SA-LSTM sizes, each on 64 videos of 26 frames, beam 5, captions of up to 20 words:

- "default": the model's default size (hidden 512, embedding 256, attention 256), a 3,000-word
  vocabulary and 2,048 features per frame (the size of pooled ResNet-50/Inception features);
- "msvd config": the network of the msvd/sa_lstm config (hidden 512, embedding 468, attention 256,
  a 5,000-word vocabulary, 512 ResNet-18 features per frame);
- "embedded config": the decoder of the captioned_digits/sa_lstm config (hidden 256, embedding 128,
  attention 128, the 46-token vocabulary, 256 features per frame), given features in place of its CNN.

The batched search decodes the 64 videos in one call over 64 x 5 hypotheses; the loop calls the same
search on one video at a time. Both return the same captions (tests/models/test_captioner.py checks
it); here only their speed is compared, as captions per second and the ratio. eos is made impossible,
so that no caption ends early and both variants run all 20 steps.
Run: `python benchmarks/beam_search.py` (`--quick` for fewer rounds).
"""

from __future__ import annotations

import torch
from timing import interleaved_medians, load_average, parse_rounds

from lstmvision.models import SALSTM

VIDEOS, FRAMES, BEAM, WORDS = 64, 26, 5, 20
MODELS = {
    "default": dict(vocab_size=3000, feature_size=2048),
    "msvd config": dict(
        vocab_size=5000, feature_size=512, embed_size=468, hidden_size=512, attention_size=256
    ),
    "embedded config": dict(
        vocab_size=46, feature_size=256, embed_size=128, hidden_size=256, attention_size=128
    ),
}


def main() -> None:
    warmup, rounds = parse_rounds(__doc__, quick=(1, 2), full=(1, 5))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load_average():.2f}")
    print(
        f"\n{VIDEOS} videos x {FRAMES} frames, beam {BEAM}, {WORDS} words\n"
        "| model | batched: s (captions/s) | per-video loop: s (captions/s) | batched speed-up |\n|---|---|---|---|"
    )
    for name, sizes in MODELS.items():
        torch.manual_seed(0)
        model = SALSTM(**sizes, max_length=WORDS).eval()  # type: ignore[arg-type]
        with torch.no_grad():  # no early eos: every hypothesis runs the full 20 steps in both variants
            model.out.bias[model.eos_id] = -1e4
        features = torch.randn(VIDEOS, FRAMES, sizes["feature_size"])
        lengths = torch.randint(10, FRAMES + 1, (VIDEOS,))

        def batched(
            model: SALSTM = model, features: torch.Tensor = features, lengths: torch.Tensor = lengths
        ) -> None:
            model.beam_search(features, lengths, beam_size=BEAM)

        def loop(
            model: SALSTM = model, features: torch.Tensor = features, lengths: torch.Tensor = lengths
        ) -> None:
            for b in range(VIDEOS):
                model.beam_search(features[b : b + 1], lengths[b : b + 1], beam_size=BEAM)

        times = interleaved_medians({"batched": batched, "loop": loop}, warmup, rounds)
        one, many = times["batched"], times["loop"]
        print(
            f"| {name} | {one:.3f} ({VIDEOS / one:.1f}) | {many:.3f} ({VIDEOS / many:.1f}) | {many / one:.2f}x |"
        )


if __name__ == "__main__":
    main()
