"""SA-LSTM captioner: masked attention, real dropout, batched beam search equal to per-video beam search."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmvision.encoders import SmallCNN
from lstmvision.models.captioner import SALSTM
from lstmvision.models.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

V, D = 9, 5


def _model(seed: int = 0, **kwargs: object) -> SALSTM:
    torch.manual_seed(seed)
    options: dict[str, object] = dict(
        embed_size=6, hidden_size=8, attention_size=7, dropout=0.0, max_length=7
    )
    options.update(kwargs)
    model = SALSTM(V, D, **options)  # type: ignore[arg-type]
    return model.eval()


def _tokens(B: int, L: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, V, (B, L), generator=g)
    tokens[:, 0] = 1
    return tokens


def test_registered_name_builds_the_model() -> None:
    assert isinstance(create_model("sa_lstm", vocab_size=V, feature_size=D), SALSTM)


@pytest.mark.parametrize("encoder", ["none", "bilstm"])
def test_padded_frames_get_zero_weight_and_cannot_change_logits(encoder: str) -> None:
    model = _model(encoder=encoder)
    features, lengths, tokens = torch.randn(3, 6, D), torch.tensor([6, 2, 4]), _tokens(3, 5)
    logits, attention = model(features, tokens, lengths, return_attention=True)
    assert logits.shape == (3, 4, V) and attention.shape == (3, 4, 6)
    for b, n in enumerate(lengths.tolist()):
        assert (attention[b, :, n:] == 0).all()
        assert (attention[b, :, :n] > 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 4))
    garbage = features.clone()
    garbage[1, 2:] = 1e6
    garbage[2, 4:] = float("nan")
    logits2 = model(garbage, tokens, lengths)
    assert torch.equal(logits, logits2), f"max change {(logits - logits2).abs().max()}"


def test_logits_match_a_step_by_step_reference_of_the_equations() -> None:
    model = _model(init_state="mean")
    features, tokens = torch.randn(2, 4, D), _tokens(2, 4)
    logits = model(features, tokens, torch.tensor([4, 3]))
    for b, n in enumerate([4, 3]):
        v = features[b, :n]  # (n, D)
        h = torch.tanh(model.init_h(v.mean(0)))  # type: ignore[misc]
        c = torch.tanh(model.init_c(v.mean(0)))  # type: ignore[misc]
        for t in range(3):
            e = model.attn_score(torch.tanh(model.attn_hidden(h) + model.attn_memory(v))).squeeze(-1)
            context = (torch.softmax(e, 0)[:, None] * v).sum(0)
            x = torch.cat([model.embedding(tokens[b, t]), context])
            h, c = model.cell(x[None], (h[None], c[None]))
            h, c = h[0], c[0]
            torch.testing.assert_close(logits[b, t], model.out(h), atol=1e-5, rtol=1e-5)


def test_every_parameter_gets_a_gradient() -> None:
    model = _model(encoder="bilstm", context_gate=True, deep_output=True, dropout=0.1).train()
    logits = model(torch.randn(3, 5, D), _tokens(3, 4), torch.tensor([5, 2, 3]))
    logits.square().sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"


def test_dropout_applies_in_training_only() -> None:
    model = _model(dropout=0.5, deep_output=True)
    features, tokens = torch.randn(2, 4, D), _tokens(2, 5)
    model.train()
    assert not torch.equal(model(features, tokens), model(features, tokens))
    model.eval()
    assert torch.equal(model(features, tokens), model(features, tokens))


def test_scheduled_sampling_feeds_own_predictions() -> None:
    model = _model()
    features, tokens = torch.randn(2, 4, D), _tokens(2, 6)
    assert torch.equal(model(features, tokens, teacher_forcing=1.0), model(features, tokens))
    # with ratio 0 every input after bos is the previous argmax: the greedy path
    free = model(features, tokens, teacher_forcing=0.0)
    fed = torch.cat([tokens[:, :1], free.argmax(-1)[:, :-1]], dim=1)
    torch.testing.assert_close(free, model(features, torch.cat([fed, tokens[:, -1:]], 1)))


def test_beam_one_equals_greedy_exactly() -> None:
    for seed in range(4):
        model = _model(seed, context_gate=True)
        features, lengths = torch.randn(4, 6, D), torch.tensor([6, 1, 3, 5])
        greedy = model.greedy(features, lengths)
        beam = model.beam_search(features, lengths, beam_size=1)
        assert [g.tokens for g in greedy] == [hyps[0].tokens for hyps in beam]
        assert [g.score for g in greedy] == [hyps[0].score for hyps in beam]
        assert model.generate(features, lengths) == [g.tokens for g in greedy]


@pytest.mark.parametrize("beam_size", [3, 5])
def test_batched_beam_search_equals_beam_search_per_video(beam_size: int) -> None:
    model = _model(encoder="bilstm", deep_output=True)
    features, lengths = torch.randn(4, 6, D), torch.tensor([6, 2, 4, 1])
    batched = model.beam_search(features, lengths, beam_size=beam_size)
    for b, n in enumerate(lengths.tolist()):
        alone = model.beam_search(features[b : b + 1, :n], beam_size=beam_size)[0]
        assert [c.tokens for c in batched[b]] == [c.tokens for c in alone]
        for x, y in zip(batched[b], alone):
            assert abs(x.score - y.score) < 1e-5
            torch.testing.assert_close(x.attention[:, :n], y.attention, atol=1e-5, rtol=1e-5)


def test_beam_search_hypotheses_are_distinct_and_at_least_greedy() -> None:
    for seed in range(6):
        model = _model(seed)
        features, lengths = torch.randn(3, 5, D), torch.tensor([5, 3, 2])
        greedy = model.greedy(features, lengths)
        for b, hyps in enumerate(model.beam_search(features, lengths, beam_size=4)):
            sequences = [(*c.tokens, c.attention.shape[0]) for c in hyps]
            assert len(sequences) == len(set(sequences)), f"duplicate hypotheses: {sequences}"
            assert len(hyps) >= 4
            assert hyps[0].score >= greedy[b].score - 1e-6, (seed, b, hyps[0].score, greedy[b].score)
            assert 2 not in hyps[0].tokens and 1 not in hyps[0].tokens


def test_caption_score_is_the_summed_log_probability() -> None:
    model = _model(3)
    features = torch.randn(1, 4, D)
    caption = model.beam_search(features, beam_size=3, max_length=7)[0][0]
    ended = caption.attention.shape[0] == len(caption.tokens) + 1
    tokens = torch.tensor([[1, *caption.tokens, *([2] if ended else [])]])
    with torch.no_grad():
        logp = torch.log_softmax(model(features, tokens), -1)[0]  # (L-1, V)
    expected = logp.gather(1, tokens[0, 1:, None]).sum()
    assert abs(caption.score - float(expected)) < 1e-5


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"context_gate": True},
        {"deep_output": True},
        {"encoder": "bilstm", "context_gate": True, "deep_output": True},
    ],
)
def test_beam_search_steps_equal_the_teacher_forced_decoder(options: dict) -> None:
    # beam search projects the context once per frame (W_c v_i) instead of per hypothesis and step: every
    # finished caption's score and attention must still be those of the plain nn.LSTMCell decoder
    model = _model(5, **options)
    features, lengths = torch.randn(2, 5, D), torch.tensor([5, 3])
    for b, hyps in enumerate(model.beam_search(features, lengths, beam_size=3, max_length=6)):
        for caption in hyps:
            ended = caption.attention.shape[0] == len(caption.tokens) + 1
            tokens = torch.tensor([[1, *caption.tokens, *([2] if ended else [])]])
            with torch.no_grad():
                logits, attention = model(
                    features[b : b + 1], tokens, lengths[b : b + 1], return_attention=True
                )
            expected = torch.log_softmax(logits, -1)[0].gather(1, tokens[0, 1:, None]).sum()
            assert abs(caption.score - float(expected)) < 1e-5, (options, b, caption.score, float(expected))
            torch.testing.assert_close(caption.attention, attention[0], atol=1e-6, rtol=1e-5)


def test_beam_wider_than_the_vocabulary_never_keeps_eos_as_a_word() -> None:
    # 4 ids (pad, bos, eos, one word) and 5 beams: after the first step fewer than K words can follow
    torch.manual_seed(0)
    model = SALSTM(4, D, embed_size=4, hidden_size=6, attention_size=3, max_length=4).eval()
    for hyps in model.beam_search(torch.randn(2, 3, D), torch.tensor([3, 2]), beam_size=5):
        assert [c.tokens for c in hyps] == [[], [3], [3, 3], [3, 3, 3], [3, 3, 3, 3]]
        scores = [c.score for c in hyps]
        assert scores == sorted(scores, reverse=True) and all(s > float("-inf") for s in scores)


def test_length_penalty_ranks_by_normalised_score() -> None:
    model = _model(2)
    hyps = model.beam_search(torch.randn(1, 4, D), beam_size=4, length_penalty=1.0)[0]
    ranks = [c.score / c.attention.shape[0] for c in hyps]
    assert ranks == sorted(ranks, reverse=True)


def test_bad_inputs_are_refused_with_clear_messages() -> None:
    model = _model()
    features, tokens = torch.randn(2, 4, D), _tokens(2, 3)
    with pytest.raises(ValueError, match=r"features \(B, T, D=5\), got shape \(2, 4, 6\)"):
        model(torch.randn(2, 4, 6), tokens)
    with pytest.raises(ValueError, match="start every caption with bos_id=1"):
        model(features, torch.tensor([[3, 4], [1, 4]]))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\]"):
        model(features, tokens, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="lengths must be integers"):
        model(features, tokens, torch.tensor([1.0, 4.0]))
    with pytest.raises(ValueError, match="L >= 2"):
        model(features, tokens[:, :1])
    with pytest.raises(ValueError, match="share the batch size"):
        model(features, _tokens(3, 3))
    with pytest.raises(ValueError, match="vocab_size=9"):
        model(features, torch.tensor([[1, 9], [1, 3]]))
    with pytest.raises(ValueError, match="teacher_forcing"):
        model(features, tokens, teacher_forcing=1.5)
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        model.beam_search(features, beam_size=0)
    with pytest.raises(ValueError, match="max_length must be >= 1"):
        model.generate(features, max_length=0)
    with pytest.raises(ValueError, match=r"expects torch\.float32"):
        model.generate(features.double())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(hidden_size=0), "hidden_size must be >= 1, got 0"),
        (dict(encoder="gru"), "encoder must be 'none' or 'bilstm', got 'gru'"),
        (dict(init_state="learnt"), "init_state must be"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (dict(eos_id=9), r"eos_id must be in \[0, vocab_size=9\), got 9"),
        (dict(bos_id=2), "must differ"),
        (dict(max_length=0), "max_length must be >= 1"),
    ],
)
def test_bad_constructor_values_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SALSTM(V, D, **kwargs)


def test_overfits_four_videos_and_greedy_reproduces_them() -> None:
    torch.manual_seed(0)
    model = SALSTM(V, D, embed_size=16, hidden_size=32, attention_size=16, dropout=0.0, max_length=8)
    features, lengths = torch.randn(4, 5, D), torch.tensor([5, 3, 4, 2])
    captions = [[3, 4, 5], [6, 7], [8, 3, 6, 4], [5]]
    tokens = torch.zeros(4, 6, dtype=torch.long)  # pad 0 after eos
    for b, words in enumerate(captions):
        tokens[b, : len(words) + 2] = torch.tensor([1, *words, 2])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(200):
        logits = model(features, tokens, lengths)
        loss = F.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.02, f"loss {loss.item()}"
    model.eval()
    assert model.generate(features, lengths) == captions
    assert model.generate(features, lengths, beam_size=3) == captions


def _frame_model() -> tuple[SALSTM, SmallCNN]:
    torch.manual_seed(0)
    encoder = SmallCNN(1, [4, 8], pool_size=2, feature_dim=D)
    options = dict(embed_size=6, hidden_size=8, attention_size=7, dropout=0.0, max_length=7, encoder="bilstm")
    return SALSTM(V, D, frame_encoder=encoder, **options).eval(), encoder  # type: ignore[arg-type]


def test_frame_encoder_reads_frames_like_features_of_the_same_cnn() -> None:
    model, encoder = _frame_model()
    frames, lengths, tokens = torch.rand(2, 4, 1, 16, 16), torch.tensor([4, 2]), _tokens(2, 5)
    _, features = encoder(frames.flatten(0, 1))  # (B*T, D): the CNN on every frame
    features = features.unflatten(0, (2, 4))  # (B, T, D)
    on_features = SALSTM(
        V, D, embed_size=6, hidden_size=8, attention_size=7, dropout=0.0, encoder="bilstm"
    ).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("frame_encoder.")}
    on_features.load_state_dict(state)
    torch.testing.assert_close(model(frames, tokens, lengths), on_features(features, tokens, lengths))
    assert model.generate(frames, lengths, beam_size=3) == on_features.generate(
        features, lengths, beam_size=3
    )


def test_frame_encoder_is_trained_end_to_end() -> None:
    model, encoder = _frame_model()
    model.train()
    frames, tokens = torch.rand(2, 3, 1, 16, 16), _tokens(2, 4)
    model(frames, tokens, torch.tensor([3, 2])).logsumexp(-1).sum().backward()
    missing = [n for n, p in encoder.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient reaches {missing}"


def test_frame_encoder_errors() -> None:
    model, _ = _frame_model()
    with pytest.raises(ValueError, match=r"frames \(B, T, C=1, H, W\), got shape \(2, 4, 5\)"):
        model(torch.rand(2, 4, 5), _tokens(2, 3))
    with pytest.raises(ValueError, match=r"frames \(B, T, C=1, H, W\), got shape \(2, 4, 3, 16, 16\)"):
        model(torch.rand(2, 4, 3, 16, 16), _tokens(2, 3))
    with pytest.raises(ValueError, match="SmallCNN gives 6 features per frame, feature_size is 5"):
        SALSTM(V, D, frame_encoder=SmallCNN(1, [4], feature_dim=6))
    with pytest.raises(TypeError, match="frame_encoder must be a FrameEncoder, got Linear"):
        SALSTM(V, D, frame_encoder=torch.nn.Linear(2, 2))  # type: ignore[arg-type]
