"""Batched beam search against a per-video loop: captions per second of `SALSTM.beam_search`.

One SA-LSTM of the default size (hidden 512, embedding 256, attention 256, a 3,000-word vocabulary) on
64 videos of 26 frames x 2,048 features (the size of pooled ResNet/Inception features of MSVD clips),
beam 5, captions of up to 20 words. The batched search decodes the 64 videos in one call over
64 x 5 hypotheses; the loop calls the same search on one video at a time. Both return the same
captions (tests/models/test_captioner.py checks it); here only their speed is compared, as captions
per second and the ratio. The weights are random, so no caption ends early and both run all 20 steps.
Run: `python benchmarks/beam_search.py` (`--quick` for fewer rounds).
"""

from __future__ import annotations

import torch
from timing import interleaved_medians, load_average, parse_rounds

from lstmvision.models import SALSTM


def main() -> None:
    warmup, rounds = parse_rounds(__doc__, quick=(1, 2), full=(1, 5))
    torch.manual_seed(0)
    model = SALSTM(3000, 2048, max_length=20).eval()
    with torch.no_grad():  # no early eos: every hypothesis runs the full 20 steps in both variants
        model.out.bias[model.eos_id] = -1e4
    features = torch.randn(64, 26, 2048)
    lengths = torch.randint(10, 27, (64,))

    def batched() -> None:
        model.beam_search(features, lengths, beam_size=5)

    def loop() -> None:
        for b in range(features.shape[0]):
            model.beam_search(features[b : b + 1], lengths[b : b + 1], beam_size=5)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load_average():.2f}")
    times = interleaved_medians(
        {"batched (64 x 5 hypotheses)": batched, "per-video loop": loop}, warmup, rounds
    )
    print("\n| variant | seconds for 64 videos | captions / s |\n|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.3f} | {64 / seconds:.1f} |")
    ratio = times["per-video loop"] / times["batched (64 x 5 hypotheses)"]
    print(f"\nbatched beam search is {ratio:.2f}x faster than the per-video loop (beam 5, 64 videos)")


if __name__ == "__main__":
    main()
