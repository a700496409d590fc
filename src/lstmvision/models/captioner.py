"""SA-LSTM video captioner: an LSTM decoder with soft temporal attention over frame features.

Yao et al., "Describing Videos by Exploiting Temporal Structure", ICCV 2015,
https://arxiv.org/abs/1502.08029. At every word the decoder attends over the (pre-extracted) features
of the video's frames (or, with a ``frame_encoder``, at the features a CNN computes from the frames,
trained end to end). Three defects of the public PyTorch re-implementation are avoided here (see
docs/sa_lstm.md): padded frames get attention weight exactly 0, dropout really applies in training,
and in beam search a finished hypothesis leaves the beam instead of filling several beam slots.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmvision._checks import check_input_dtype, check_lengths, check_rate, check_tensor
from lstmvision.encoders import FrameEncoder
from lstmvision.layers import TimeDistributed, length_mask, temporal_mean
from lstmvision.models.registry import register_model

__all__ = ["SALSTM", "Caption"]


class Caption(NamedTuple):
    """One decoded caption: token ids without bos/eos, its summed log-probability (eos included) and
    the attention over frames ``(steps, T)`` of every decoding step (eos step included)."""

    tokens: list[int]
    score: float
    attention: Tensor


class _Memory(NamedTuple):
    """What the decoder attends to, computed once per video: values ``(B, T, E)``, their projection
    ``U v + b`` ``(B, T, A)``, the valid-frame mask ``(B, T)`` (None: every frame is valid) and, for beam
    search, the decoder LSTM's input weights for the context applied to every value ``W_c v_i``
    ``(B, T, 4H)`` (None: the context is projected at every step).

    A decoder state of ``N = B·K`` rows holds ``K`` consecutive hypotheses per video (``K = 1`` outside
    beam search); they all read their video's memory, which is never copied ``K`` times."""

    values: Tensor
    keys: Tensor
    mask: Tensor | None
    projected: Tensor | None = None


_State = tuple[Tensor, Tensor]


@register_model("sa_lstm")
class SALSTM(nn.Module):
    """SA-LSTM: soft temporal attention over frame features feeding an ``nn.LSTMCell`` word decoder.

    With frame features (or BiLSTM encoder outputs) ``v_1..v_T`` and the previous hidden state
    ``h_{t-1}``, every step computes::

        e_i   = wᵀ tanh(W h_{t-1} + U v_i + b)         (U v_i + b precomputed once per video)
        α     = softmax(e) over the valid frames only  (padded frames: weight exactly 0)
        φ     = Σ_i α_i v_i                            (× σ(w_gᵀ h_{t-1} + b_g) with context_gate)
        h_t, c_t = LSTMCell([E y_{t-1}; φ], (h_{t-1}, c_{t-1}))
        logits = W_out dropout(h_t)                    or, with deep_output,
        logits = W_out dropout(tanh(W_o [h_t; φ; E y_{t-1}]))

    The initial state is ``h_0 = tanh(W_h v̄)``, ``c_0 = tanh(W_c v̄)`` with ``v̄`` the mean of the
    valid ``v_i`` (``init_state="mean"``), or zeros. Dropout applies to the word embeddings and to the
    input of the output layer.

    Args:
        vocab_size: V, the number of token ids (``pad_id``, ``bos_id``, ``eos_id`` included).
        feature_size: D, the size of a frame's feature vector.
        embed_size: size of the word embeddings.
        hidden_size: size of the decoder LSTM.
        attention_size: A, the size of ``W h + U v``.
        encoder: ``"none"``: attend to the features; ``"bilstm"``: a bidirectional LSTM (packed by
            ``lengths``) reads the features first and the decoder attends to its outputs.
        encoder_size: hidden size of each direction of the BiLSTM encoder.
        init_state: ``"mean"`` (from the mean valid feature) or ``"zeros"``.
        context_gate: scale the context by a scalar gate ``σ(w_gᵀ h_{t-1} + b_g)`` (Xu et al. 2015).
        deep_output: a tanh layer over ``[h; context; embedding]`` before the output layer.
        dropout: dropout rate on the embeddings and before the output layer.
        pad_id, bos_id, eos_id: special token ids.
        max_length: default maximum number of generated tokens (eos included).
        frame_encoder: a :class:`~lstmvision.encoders.FrameEncoder` with ``feature_dim == feature_size``:
            the model then takes frames ``(B, T, C, H, W)`` and computes each frame's feature (the
            encoder's pooled vector) in one call over all ``B·T`` frames; None: pre-extracted features.

    Shape:
        - features: ``(B, T, D)`` float, or frames ``(B, T, C, H, W)`` with a ``frame_encoder``;
          lengths: ``(B,)`` integers in ``[1, T]`` or None.
        - tokens: ``(B, L)`` ids, ``tokens[:, 0] == bos_id``, ``L >= 2``.
        - forward output: logits ``(B, L-1, V)``; ``logits[:, t]`` predicts ``tokens[:, t+1]`` from
          ``tokens[:, :t+1]`` (inputs ``tokens[:, :-1]``, targets ``tokens[:, 1:]``); attention
          ``(B, L-1, T)`` with ``return_attention=True``.

    Differences from the reference implementation: padded frames are masked out of the softmax (the
    release attends to them), dropout is an ``nn.Dropout`` module active in training (the release's
    never applies), and beam search finalises a hypothesis at eos instead of re-expanding it.
    """

    def __init__(
        self,
        vocab_size: int,
        feature_size: int,
        *,
        embed_size: int = 256,
        hidden_size: int = 512,
        attention_size: int = 256,
        encoder: Literal["none", "bilstm"] = "none",
        encoder_size: int = 256,
        init_state: Literal["zeros", "mean"] = "mean",
        context_gate: bool = False,
        deep_output: bool = False,
        dropout: float = 0.5,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
        max_length: int = 20,
        frame_encoder: FrameEncoder | None = None,
    ) -> None:
        super().__init__()
        sizes = dict(
            feature_size=feature_size,
            embed_size=embed_size,
            hidden_size=hidden_size,
            attention_size=attention_size,
            encoder_size=encoder_size,
            max_length=max_length,
        )
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if encoder not in ("none", "bilstm"):
            raise ValueError(f"encoder must be 'none' or 'bilstm', got {encoder!r}")
        if init_state not in ("zeros", "mean"):
            raise ValueError(f"init_state must be 'zeros' or 'mean', got {init_state!r}")
        check_rate(dropout, "dropout")
        specials = dict(pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        for name, value in specials.items():
            if not 0 <= value < vocab_size:
                raise ValueError(f"{name} must be in [0, vocab_size={vocab_size}), got {value}")
        if len(set(specials.values())) != 3:
            raise ValueError(f"pad_id, bos_id and eos_id must differ, got {specials}")
        self.vocab_size, self.feature_size, self.max_length = vocab_size, feature_size, max_length
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        if frame_encoder is not None:
            if not isinstance(frame_encoder, FrameEncoder):
                raise TypeError(f"frame_encoder must be a FrameEncoder, got {type(frame_encoder).__name__}")
            if frame_encoder.feature_dim != feature_size:
                raise ValueError(
                    f"frame_encoder {type(frame_encoder).__name__} gives {frame_encoder.feature_dim} features "
                    f"per frame, feature_size is {feature_size}"
                )
        self.frame_encoder = None if frame_encoder is None else TimeDistributed(frame_encoder, input_rank=5)
        self.in_channels = None if frame_encoder is None else frame_encoder.in_channels

        if encoder == "bilstm":
            self.encoder: nn.LSTM | None = nn.LSTM(
                feature_size, encoder_size, batch_first=True, bidirectional=True
            )
            memory_size = 2 * encoder_size
        else:
            self.encoder = None
            memory_size = feature_size
        self.init_h = nn.Linear(memory_size, hidden_size) if init_state == "mean" else None
        self.init_c = nn.Linear(memory_size, hidden_size) if init_state == "mean" else None
        self.hidden_size = hidden_size

        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=pad_id)
        self.attn_hidden = nn.Linear(hidden_size, attention_size, bias=False)  # W
        self.attn_memory = nn.Linear(memory_size, attention_size)  # U and b
        self.attn_score = nn.Linear(attention_size, 1, bias=False)  # w
        self.gate = nn.Linear(hidden_size, 1) if context_gate else None
        self.cell = nn.LSTMCell(embed_size + memory_size, hidden_size)
        self.deep = nn.Linear(hidden_size + memory_size + embed_size, embed_size) if deep_output else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(embed_size if deep_output else hidden_size, vocab_size)

    # ---- encoding and one decoder step -------------------------------------------------------------

    def _check_features(self, features: Tensor, lengths: Tensor | None) -> Tensor | None:
        check_tensor(type(self).__name__, features, "features")
        if self.in_channels is not None:
            if features.dim() != 5 or features.shape[2] != self.in_channels or min(features.shape) < 1:
                raise ValueError(
                    f"SALSTM with a frame_encoder expects frames (B, T, C={self.in_channels}, H, W), "
                    f"got shape {tuple(features.shape)}"
                )
        elif features.dim() != 3 or features.shape[-1] != self.feature_size:
            raise ValueError(
                f"SALSTM expects features (B, T, D={self.feature_size}), got shape {tuple(features.shape)}"
            )
        check_input_dtype("SALSTM", features, self)
        B, T = features.shape[:2]
        return check_lengths(lengths, B, T, features.device)

    def encode(
        self, features: Tensor, lengths: Tensor | None = None, *, project_context: bool = False
    ) -> tuple[_Memory, _State]:
        """The attention memory of each video and the decoder's initial state ``((B, H), (B, H))``.

        ``project_context``: also apply the LSTM's context input weights to every value once
        (``_Memory.projected``), which beam search uses (see :meth:`_projected_cell`)."""
        lengths = self._check_features(features, lengths)
        if self.frame_encoder is not None:
            _, features = self.frame_encoder(features)  # pooled features of every frame: (B, T, D)
        B, T, _ = features.shape
        mask = length_mask(lengths, B, T, features.device)  # (B, T) or None
        if mask is not None:
            # zero the padding so that no value there (even inf or nan) can reach a result
            features = features.masked_fill(~mask[..., None], 0.0)
        if self.encoder is not None:
            if lengths is None:
                values, _ = self.encoder(features)  # (B, T, 2*encoder_size)
            else:
                packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
                packed_out, _ = self.encoder(packed)
                values, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)  # zeros after
        else:
            values = features  # (B, T, D)
        keys = self.attn_memory(values)  # U v_i + b, once per video: (B, T, A)
        if self.init_h is not None and self.init_c is not None:
            mean = temporal_mean(values, lengths)  # (B, E), over valid frames only
            state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        else:
            zeros = values.new_zeros(B, self.hidden_size)
            state = (zeros, zeros)
        projected = None
        if project_context:
            embed_size = self.embedding.embedding_dim  # weight_ih's columns: [embedding; context]
            projected = F.linear(values, self.cell.weight_ih[:, embed_size:])  # W_c v_i: (B, T, 4H)
        return _Memory(values, keys, mask, projected), state

    def _attend(self, memory: _Memory, h: Tensor) -> Tensor:
        """Attention weights ``(B, K, T)`` of the ``N = B·K`` hypotheses ``h``; masked frames get
        weight exactly 0."""
        B = memory.keys.shape[0]
        query = self.attn_hidden(h).unflatten(0, (B, -1))  # (B*K, A) -> (B, K, A)
        energy = (query[:, :, None] + memory.keys[:, None]).tanh_()  # (B, K, 1, A) + (B, 1, T, A)
        scores = self.attn_score(energy).squeeze(-1)  # (B, K, T)
        if memory.mask is not None:
            # exp(-inf) == 0; lengths >= 1
            scores = scores.masked_fill(~memory.mask[:, None], float("-inf"))  # (B, 1, T) over K
        return torch.softmax(scores, dim=-1)

    @staticmethod
    def _mix(alpha: Tensor, values: Tensor, gate: Tensor | None) -> Tensor:
        """``gate · Σ_i α_i x_i`` for each hypothesis: ``(B, K, T)`` weights over ``(B, T, F)`` values
        -> ``(B*K, F)``; ``gate`` ``(B*K, 1)`` or None."""
        mixed = torch.bmm(alpha, values).flatten(0, 1)  # (B, K, F) -> (B*K, F)
        return mixed if gate is None else gate * mixed

    def _projected_cell(self, embedded: Tensor, from_context: Tensor, state: _State) -> _State:
        """``self.cell([embedded; gate · Σ_i α_i v_i], state)`` computed as ``W_e embedded + gate · Σ_i
        α_i (W_c v_i) + ...`` from ``from_context = gate · Σ_i α_i (W_c v_i)`` ``(N, 4H)``: the same gates
        (up to rounding), with the context weights applied to the T values of a video once instead of to
        the context of each of its K hypotheses at every step."""
        h, c = state
        cell = self.cell
        embed_size = embedded.shape[-1]
        # the other terms accumulate into the same tensor (addmm's beta = 1: no separate additions)
        gates = from_context.addmm_(embedded, cell.weight_ih[:, :embed_size].t()).addmm_(
            h, cell.weight_hh.t()
        )
        gates = gates.add_(cell.bias_ih + cell.bias_hh)  # (N, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # nn.LSTMCell's gate order
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def _step(self, memory: _Memory, token: Tensor, state: _State) -> tuple[Tensor, _State, Tensor]:
        """One word: logits ``(N, V)``, the new state and the attention weights ``(N, T)``."""
        h, c = state
        embedded = self.dropout(self.embedding(token))  # (N, embed_size)
        alpha = self._attend(memory, h)  # (B, K, T)
        gate = torch.sigmoid(self.gate(h)) if self.gate is not None else None  # (N, 1)
        context = None  # gate · Σ_i α_i v_i (N, E), formed only where it is read
        if memory.projected is None:
            context = self._mix(alpha, memory.values, gate)
            h, c = self.cell(torch.cat([embedded, context], dim=-1), (h, c))
        else:
            h, c = self._projected_cell(embedded, self._mix(alpha, memory.projected, gate), (h, c))
        if self.deep is not None:
            if context is None:
                context = self._mix(alpha, memory.values, gate)
            hidden = torch.tanh(self.deep(torch.cat([h, context, embedded], dim=-1)))  # (N, embed_size)
        else:
            hidden = h
        return self.out(self.dropout(hidden)), (h, c), alpha.flatten(0, 1)  # alpha: (N, T)

    # ---- teacher forcing ---------------------------------------------------------------------------

    def forward(
        self,
        features: Tensor,
        tokens: Tensor,
        lengths: Tensor | None = None,
        *,
        teacher_forcing: float = 1.0,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Logits ``(B, L-1, V)`` predicting ``tokens[:, 1:]`` (and attention ``(B, L-1, T)`` on request).

        With ``teacher_forcing < 1`` (scheduled sampling, Bengio et al. 2015), each caption at each
        step after the first is fed the model's own previous argmax with probability
        ``1 - teacher_forcing`` instead of the ground-truth token.
        """
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        if tokens.dim() != 2 or tokens.shape[1] < 2 or tokens.is_floating_point() or tokens.is_complex():
            raise ValueError(
                f"SALSTM expects integer tokens (B, L >= 2), got {tokens.dtype} {tuple(tokens.shape)}"
            )
        if features.dim() >= 3 and tokens.shape[0] != features.shape[0]:
            raise ValueError(
                f"tokens and features must share the batch size, got {tokens.shape[0]} and {features.shape[0]}"
            )
        if not bool((tokens[:, 0] == self.bos_id).all()):
            raise ValueError(
                f"SALSTM: tokens must start every caption with bos_id={self.bos_id}, got {tokens[:, 0].tolist()}"
            )
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size:
            raise ValueError(
                f"tokens must be in [0, vocab_size={self.vocab_size}), got "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        memory, state = self.encode(features, lengths)
        B, L = tokens.shape
        logits, attention = [], []
        token = tokens[:, 0]
        for t in range(L - 1):
            step_logits, state, alpha = self._step(memory, token, state)
            logits.append(step_logits)
            attention.append(alpha)
            token = tokens[:, t + 1]
            if teacher_forcing < 1.0:
                own = step_logits.argmax(dim=-1)  # (B,), no gradient through the choice
                use_truth = torch.rand(B, device=tokens.device) < teacher_forcing
                token = torch.where(use_truth, token, own)
        out = torch.stack(logits, dim=1)  # L-1 x (B, V) -> (B, L-1, V)
        if return_attention:
            return out, torch.stack(attention, dim=1)  # L-1 x (B, T) -> (B, L-1, T)
        return out

    # ---- decoding ----------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        features: Tensor,
        lengths: Tensor | None = None,
        *,
        beam_size: int = 1,
        max_length: int | None = None,
        length_penalty: float = 0.0,
    ) -> list[list[int]]:
        """The best caption of every video as token ids without bos/eos (see :meth:`decode`)."""
        captions = self.decode(
            features, lengths, beam_size=beam_size, max_length=max_length, length_penalty=length_penalty
        )
        return [caption.tokens for caption in captions]

    @torch.no_grad()
    def decode(
        self,
        features: Tensor,
        lengths: Tensor | None = None,
        *,
        beam_size: int = 1,
        max_length: int | None = None,
        length_penalty: float = 0.0,
    ) -> list[Caption]:
        """The best :class:`Caption` per video: greedy for ``beam_size == 1``, else beam search."""
        if beam_size == 1:
            return self.greedy(features, lengths, max_length=max_length)
        return [
            hyps[0]
            for hyps in self.beam_search(
                features, lengths, beam_size=beam_size, max_length=max_length, length_penalty=length_penalty
            )
        ]

    def _max_length(self, max_length: int | None) -> int:
        steps = self.max_length if max_length is None else max_length
        if steps < 1:
            raise ValueError(f"max_length must be >= 1, got {steps}")
        return steps

    def _top_words(self, logits: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """The ``n`` likeliest next tokens of every row, as log-probabilities and ids ``(N, n)`` each.

        pad and bos can never be generated (their logits are set to -inf in place, after the normaliser:
        the other log-probabilities are not renormalised, scores stay model log-probs). Only the chosen
        ``n`` log-probabilities are formed, ``log p = logit - logsumexp(logits)``, not all ``V``."""
        logits = logits.float()
        normaliser = torch.logsumexp(logits, dim=-1, keepdim=True)  # (N, 1)
        logits[:, [self.pad_id, self.bos_id]] = float("-inf")
        top, ids = logits.topk(n, dim=-1)  # (N, n) each
        return top - normaliser, ids

    @torch.no_grad()
    def greedy(
        self, features: Tensor, lengths: Tensor | None = None, *, max_length: int | None = None
    ) -> list[Caption]:
        """Greedy decoding of a batch; a caption ends at eos or after ``max_length`` tokens."""
        steps = self._max_length(max_length)
        memory, state = self.encode(features, lengths)
        B = features.shape[0]
        token = torch.full((B,), self.bos_id, dtype=torch.long, device=features.device)
        done = torch.zeros(B, dtype=torch.bool, device=features.device)
        scores = features.new_zeros(B)
        chosen, attention = [], []
        for _ in range(steps):
            logits, state, alpha = self._step(memory, token, state)
            best, token = (x.squeeze(-1) for x in self._top_words(logits, 1))  # (B,) each
            scores = scores + torch.where(done, torch.zeros_like(best), best)
            chosen.append(torch.where(done, torch.full_like(token, -1), token))  # -1: after the end
            attention.append(alpha)
            done = done | (token == self.eos_id)
            if bool(done.all()):
                break
        ids = torch.stack(chosen, dim=1).tolist()  # (B, steps)
        alphas = torch.stack(attention, dim=1)  # (B, steps, T)
        captions = []
        for b in range(B):
            n = sum(1 for i in ids[b] if i != -1)  # generated tokens, eos included
            words = [i for i in ids[b][:n] if i != self.eos_id]
            captions.append(Caption(words, float(scores[b]), alphas[b, :n]))
        return captions

    @torch.no_grad()
    def beam_search(
        self,
        features: Tensor,
        lengths: Tensor | None = None,
        *,
        beam_size: int = 3,
        max_length: int | None = None,
        length_penalty: float = 0.0,
    ) -> list[list[Caption]]:
        """Batched beam search over ``B·K`` hypotheses at once; every video's finished captions, best first.

        Each step expands the ``K`` live hypotheses of a video over the vocabulary and keeps the top
        ``2K`` of its ``K·V`` candidates: an eos among the first ``K`` is finalised (moved to the video's
        finished list; it never occupies a beam slot again), and the best ``K`` non-eos candidates stay
        live. A video stops once it has ``K`` finished captions and none of its live hypotheses can beat
        the best of them; at ``max_length`` the live hypotheses are finalised as they are. Captions are
        ranked by ``score / length ** length_penalty`` (``length``: tokens generated, eos included;
        ``length_penalty=0``: the summed log-probability).
        """
        K = beam_size
        if K < 1:
            raise ValueError(f"beam_size must be >= 1, got {K}")
        if length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
        steps = self._max_length(max_length)
        # with K > 1 hypotheses per video over up to `steps` words, projecting the T values of a video
        # once costs less than projecting K contexts at every step (benchmarks/beam_search.py)
        memory, (h, c) = self.encode(features, lengths, project_context=K > 1)
        B, T = features.shape[:2]
        device = features.device
        # one hypothesis per video (bos) at first, K after the first step: the first step is computed
        # once per video, not for K copies of the same hypothesis
        state = (h, c)  # (B*k, H) with k hypotheses per video
        token = torch.full((B,), self.bos_id, dtype=torch.long, device=device)
        scores = torch.zeros(B, 1, device=device)  # (B, k)
        history = torch.empty(B, 0, dtype=torch.long, device=device)  # tokens so far
        attn_history = features.new_empty(B, 0, T)
        finished: list[list[Caption]] = [[] for _ in range(B)]
        done = [False] * B
        videos = torch.arange(B, device=device)[:, None]  # (B, 1)

        def normalised(score: float, length: int) -> float:
            return score / (length**length_penalty)

        def ranking(cap: Caption) -> float:
            return normalised(cap.score, cap.attention.shape[0])  # length: steps generated, eos included

        for _ in range(steps):
            logits, state, alpha = self._step(memory, token, state)
            # the best 2K of a video's k*V candidates are among the best 2K words of each hypothesis
            logp, ids = self._top_words(logits, min(2 * K, logits.shape[-1]))  # (B*k, n) each
            k, n = scores.shape[1], ids.shape[1]  # hypotheses per video now, words kept per hypothesis
            candidates = (scores[..., None] + logp.view(B, k, n)).view(B, k * n)  # (B, k*n)
            top_scores, top_index = candidates.topk(min(2 * K, k * n), dim=-1)  # (B, 2K)
            source = top_index // n  # the hypothesis it extends
            word = ids.view(B, k * n).gather(1, top_index)  # the word it adds
            is_eos = word == self.eos_id
            # finalise eos candidates ranked among the first K (at most one per source beam)
            for b, rank in (is_eos[:, :K] & torch.isfinite(top_scores[:, :K])).nonzero().tolist():
                if done[b]:
                    continue
                slot = b * k + int(source[b, rank])
                finished[b].append(
                    Caption(
                        [int(i) for i in history[slot]],
                        float(top_scores[b, rank]),
                        torch.cat([attn_history[slot], alpha[slot, None]], dim=0),  # (step, T)
                    )
                )
            # the first K non-eos candidates stay live (at most k <= K of the 2K are eos; a -inf one is
            # dead and never finalised)
            order = (
                is_eos.long() * top_index.shape[1] + torch.arange(top_index.shape[1], device=device)
            ).argsort(dim=-1)[:, :K]  # (B, K)
            # an eos still among them (a vocabulary of fewer than K + 1 other words) stays dead
            scores = top_scores.masked_fill(is_eos, float("-inf")).gather(1, order)
            slots = (videos * k + source.gather(1, order)).view(-1)  # (B*K,) flat index of the source beam
            token = word.gather(1, order).view(-1)
            state = (state[0][slots], state[1][slots])
            history = torch.cat([history[slots], token[:, None]], dim=1)  # (B*K, step)
            attn_history = torch.cat([attn_history[slots], alpha[slots, None]], dim=1)  # (B*K, step, T)
            # a video is done when K captions are finished and no live one can end better
            best_live = scores.max(dim=-1).values.tolist()  # (B,)
            for b in range(B):
                if done[b] or len(finished[b]) < K:
                    continue
                best = max(ranking(cap) for cap in finished[b])
                # scores only fall with more words, and a longer length divides by at most steps**lp
                bound = normalised(best_live[b], steps)
                done[b] = best >= bound
            if all(done):
                break
        live = scores.shape[1]  # K, or fewer when the vocabulary has fewer than K words
        for b in range(B):
            if done[b]:
                continue
            for j in range(live):
                slot = b * live + j
                if torch.isfinite(scores[b, j]):
                    words = [int(i) for i in history[slot]]
                    finished[b].append(Caption(words, float(scores[b, j]), attn_history[slot]))
        return [sorted(caps, key=ranking, reverse=True) for caps in finished]
