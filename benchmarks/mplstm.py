"""MP-LSTM sequence layer against late and early fusion with ``torch.nn.LSTM``, per sequence step.

For V views (default 2, 3, 5) of D features, batch B, T steps and hidden size H, times forward (under
``torch.no_grad``) and forward + backward (sum of the output, backward) of:

- ``MultiPerspectiveLSTM(D, H, V)``: every view's input projection for all steps before the time loop,
  ``U h`` once per step, the V memory updates in a Python loop;
- the same cell stepped from Python, projecting the inputs at every step (what the hoisting saves);
- late fusion: V separate ``nn.LSTM(D, H)``, one per view, run one after another;
- early fusion: one ``nn.LSTM(V * D, H)`` on the concatenated views.

Prints a Markdown table of milliseconds per sequence step and the ratios MP-LSTM / late fusion and
MP-LSTM / early fusion (below 1: the MP-LSTM is faster). Every variant is timed once per round, rounds
interleaved, each figure the median over rounds.

Usage: ``python benchmarks/mplstm.py [--quick] [--threads N] [--views 2 3 5]``. Not part of the test run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from timing import interleaved_medians, load_average
from torch import Tensor, nn

from lstmvision.cells import MultiPerspectiveLSTM

B, T, D, H = 32, 16, 256, 128


def forward_only(run: Callable[[], Tensor]) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            run()

    return step


def forward_backward(run: Callable[[], Tensor], modules: list[nn.Module]) -> Callable[[], None]:
    def step() -> None:
        for m in modules:
            m.zero_grad(set_to_none=True)
        run().sum().backward()

    return step


def variants(V: int) -> dict[str, tuple[Callable[[], Tensor], list[nn.Module]]]:
    """name -> (a function returning the summed-over outputs, the modules holding its parameters)."""
    x = torch.randn(B, V, T, D)  # (B, V, T, D)
    mp = MultiPerspectiveLSTM(D, H, V)
    cell = mp.cells[0]
    late = [nn.LSTM(D, H, batch_first=True) for _ in range(V)]
    early = nn.LSTM(V * D, H, batch_first=True)
    x_early = x.permute(0, 2, 1, 3).flatten(2)  # (B, T, V, D) -> (B, T, V*D)

    def per_step() -> Tensor:
        state = None
        outputs = []
        for x_t in x.unbind(2):  # T x (B, V, D)
            h, state = cell(x_t, state)
            outputs.append(h)
        return torch.stack(outputs, dim=1)  # (B, T, H)

    def late_fusion() -> Tensor:
        return torch.stack([lstm(x[:, k])[0] for k, lstm in enumerate(late)]).sum(0)  # (B, T, H)

    return {
        "MP-LSTM": (lambda: mp(x)[0], [mp]),
        "MP-LSTM, per-step input projection": (per_step, [mp]),
        f"late fusion: {V} x nn.LSTM": (late_fusion, list(late)),
        f"early fusion: nn.LSTM on {V}*D": (lambda: early(x_early)[0], [early]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 warm-up and 5 timed rounds instead of 3 and 15"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--views", type=int, nargs="+", default=[2, 3, 5], help="view counts V")
    args = parser.parse_args()
    warmup, rounds = (1, 5) if args.quick else (3, 15)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = load_average()
    rows, ratios = [], []
    for V in args.views:
        timed: dict[str, Callable[[], None]] = {}
        for name, (run, modules) in variants(V).items():
            timed[f"{name}|fwd"] = forward_only(run)
            timed[f"{name}|fwd+bwd"] = forward_backward(run, modules)
        median = interleaved_medians(timed, warmup, rounds)
        names = list(dict.fromkeys(key.split("|")[0] for key in timed))
        for name in names:
            fwd, both = (median[f"{name}|{kind}"] / T * 1e3 for kind in ("fwd", "fwd+bwd"))
            rows.append(f"| {V} | {name} | {fwd:.3f} | {both:.3f} |")
        mp, late, early = names[0], names[2], names[3]
        ratio = [
            median[f"{mp}|{k}"] / median[f"{ref}|{k}"] for ref in (late, early) for k in ("fwd", "fwd+bwd")
        ]
        ratios.append(f"| {V} | " + " | ".join(f"{r:.2f}" for r in ratio) + " |")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average before {load:.2f}; "
        f"B={B} T={T} D={D} H={H}; median of {rounds} interleaved rounds\n"
    )
    print("| V | variant | forward ms/step | forward+backward ms/step |\n|---|---|---|---|")
    print("\n".join(rows))
    print(
        "\n| V | MP-LSTM / late fusion, forward | MP-LSTM / late fusion, fwd+bwd "
        "| MP-LSTM / early fusion, forward | MP-LSTM / early fusion, fwd+bwd |\n|---|---|---|---|---|"
    )
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
