"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr, computed as the COCO caption evaluation does.

:func:`score_captions` PTB-tokenises the raw reference captions and the generated captions together
(Stanford CoreNLP's PTBTokenizer through pycocoevalcap: lower case, punctuation removed), then runs
pycocoevalcap's scorers (``Bleu(4)``, ``Meteor``, ``Rouge``, ``Cider``) on ``{video id: [tokenised
captions]}``. The corpus scores and the per-video scores come back in a :class:`CaptionScores`.

**Java.** The PTB tokenizer and METEOR are Java programs. Without a Java runtime (:func:`find_java`),
the captions are tokenised by :func:`ptb_tokenize_python`, which gives the same words on ordinary text
(see :func:`lstmvision.text.tokenize` for where they differ), and METEOR is skipped: a WARNING
says so and :attr:`CaptionScores.skipped` holds the reason.

**CIDEr** takes its document frequencies from the references given, so it is only comparable between
evaluations on the same whole test set (with a single video every n-gram has idf 0 and CIDEr is 0).

**Empty captions** score 0, as in pycocoevalcap, with one quirk kept from it: ROUGE-L splits an empty
caption into one empty token, so an empty candidate scores ROUGE-L 1 against a reference that tokenises
to nothing (such as ``"..."``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from lstmvision.text import tokenize

__all__ = [
    "METRIC_NAMES",
    "CaptionScores",
    "find_java",
    "ptb_tokenize_python",
    "score_caption_sets",
    "score_captions",
]

logger = logging.getLogger(__name__)

METRIC_NAMES: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
"""The corpus metrics of :func:`score_captions`, in the order of the COCO caption evaluation."""

_NO_JAVA = "no Java runtime found: `java` is not on PATH (or `java -version` fails)"
_TOKENIZERS = ("auto", "ptb", "python")
# CoreNLP's -preserveLines starts a new output line at each of these: one in a caption would shift every
# later caption onto the wrong video.
_LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# Sent last to the Java tokenizer; it must come back as the last line, or the lines are out of step.
_SENTINEL = "lstmvision end of captions"
_METEOR_TIMEOUT_S = 600.0  # plus _METEOR_TIMEOUT_PER_VIDEO_S per video; the JVM loads in ~10 s
_METEOR_TIMEOUT_PER_VIDEO_S = 0.1
_SHOWN = 5  # ids shown in an error message


@dataclass(frozen=True)
class CaptionScores:
    """The result of :func:`score_captions`.

    Args:
        scores: metric name (of :data:`METRIC_NAMES`) -> corpus score; METEOR is absent when skipped.
        per_video: video id -> ``{"BLEU-4", "METEOR" (when computed), "ROUGE-L", "CIDEr"}`` scores.
        tokenizer: ``"ptb"`` (pycocoevalcap's Java PTBTokenizer) or ``"python"``
            (:func:`ptb_tokenize_python`).
        skipped: metric name -> why it was not computed.
    """

    scores: dict[str, float]
    per_video: dict[str, dict[str, float]]
    tokenizer: str
    skipped: dict[str, str]


def find_java() -> str | None:
    """The path of a working ``java`` (on PATH, and ``java -version`` succeeds), else None. Cached."""
    return _working_java()


@lru_cache(maxsize=1)
def _working_java() -> str | None:
    path = shutil.which("java")
    if path is None:
        return None
    try:
        subprocess.run([path, "-version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.info("%s does not run (%s): treating Java as absent", path, exc)
        return None
    return path


def ptb_tokenize_python(caption: str) -> str:
    """``caption`` tokenised as pycocoevalcap's PTBTokenizer does, in Python: lower case, PTB word
    splits, punctuation removed, brackets written ``-lrb-`` etc. as pycocoevalcap leaves them, tokens
    joined by single spaces. Equal to the Java tokenizer on ordinary text; the differences on unusual
    text are listed in :func:`lstmvision.text.tokenize`."""
    return " ".join(tokenize(caption, keep_brackets=True))


def score_captions(
    references: Mapping[str, Sequence[str]],
    candidates: Mapping[str, str],
    *,
    tokenizer: Literal["auto", "ptb", "python"] = "auto",
    meteor: bool = True,
) -> CaptionScores:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of ``candidates`` against ``references``, as the COCO caption
    evaluation computes them (see the module docstring).

    Args:
        references: video id -> its raw reference captions (at least one each).
        candidates: video id -> one generated caption (raw text, may be empty); the same ids as
            ``references``.
        tokenizer: ``"ptb"``: pycocoevalcap's Java PTBTokenizer (a RuntimeError without Java);
            ``"python"``: :func:`ptb_tokenize_python`; ``"auto"``: ``"ptb"`` when Java is found, else
            ``"python"`` with a WARNING. If the Java tokenizer fails, the Python one is used, with a
            WARNING naming the error.
        meteor: compute METEOR (needs Java; skipped with a WARNING without it).

    Returns:
        The corpus and per-video scores, the tokenizer used and the metrics skipped with the reason.
    """
    return score_caption_sets(references, {"": candidates}, tokenizer=tokenizer, meteor=meteor)[""]


def score_caption_sets(
    references: Mapping[str, Sequence[str]],
    candidate_sets: Mapping[str, Mapping[str, str]],
    *,
    tokenizer: Literal["auto", "ptb", "python"] = "auto",
    meteor: bool = True,
) -> dict[str, CaptionScores]:
    """:func:`score_captions` of each named set of candidates (such as a model's captions and a baseline's)
    against the same ``references``, with one METEOR process for all: its JVM takes seconds to load. The
    scores are those of separate :func:`score_captions` calls."""
    if not candidate_sets:
        raise ValueError("score_caption_sets: expected at least one set of candidates, got none")
    checked = {name: _check_inputs(references, candidates) for name, candidates in candidate_sets.items()}
    if tokenizer not in _TOKENIZERS:
        raise ValueError(f"score_captions: tokenizer must be one of {list(_TOKENIZERS)}, got {tokenizer!r}")
    java = find_java()
    if tokenizer == "ptb" and java is None:
        raise RuntimeError(
            f"score_captions: tokenizer='ptb' runs Stanford CoreNLP's PTBTokenizer on Java, but {_NO_JAVA}; "
            "install a Java runtime or use tokenizer='python'"
        )
    skipped: dict[str, str] = {}
    if not meteor:
        skipped["METEOR"] = "not requested (meteor=False)"
    elif java is None:
        skipped["METEOR"] = _NO_JAVA
    if java is None and (tokenizer == "auto" or meteor):  # an explicit python-only request needs no word
        logger.warning(
            "%s: %sBLEU, ROUGE-L and CIDEr use the Python PTB tokenizer (equal to pycocoevalcap's Java "
            "tokenizer on ordinary text)",
            _NO_JAVA,
            "METEOR is skipped; " if meteor else "",
        )
    # Meteor() starts its JVM at once; it loads (~10 s) while the captions are tokenised and scored.
    started = meteor_scorer = _start_meteor(skipped) if "METEOR" not in skipped else None
    used = "ptb" if tokenizer == "ptb" or (tokenizer == "auto" and java is not None) else "python"
    results: dict[str, CaptionScores] = {}
    try:
        for name, (ids, refs, cands) in checked.items():
            results[name] = _score_set(ids, refs, cands, used, meteor_scorer, skipped)
            if "METEOR" in results[name].skipped:  # skipped, or failed and killed: not tried again
                skipped["METEOR"], meteor_scorer = results[name].skipped["METEOR"], None
    finally:
        if started is not None:
            _close_meteor(started)
    return results


def _score_set(
    ids: list[str],
    refs: dict[str, list[str]],
    cands: dict[str, str],
    tokenizer: str,
    meteor_scorer: Meteor | None,
    skipped: dict[str, str],
) -> CaptionScores:
    """The scores of one set of candidates; METEOR with ``meteor_scorer`` unless ``skipped`` says why not."""
    skipped = dict(skipped)
    gts, res, used = _tokenize(ids, refs, cands, tokenizer)
    scores: dict[str, float] = {}
    per_video: dict[str, dict[str, float]] = {video_id: {} for video_id in ids}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its n-gram statistics
        bleu, bleu_per_video = Bleu(4).compute_score(gts, res)
    for n in range(4):
        scores[f"BLEU-{n + 1}"] = float(bleu[n])
    _add_per_video(per_video, ids, "BLEU-4", bleu_per_video[3])
    if meteor_scorer is not None:
        meteor_result = _run_meteor(meteor_scorer, gts, res, skipped)
        if meteor_result is not None:
            scores["METEOR"] = meteor_result[0]
            _add_per_video(per_video, ids, "METEOR", meteor_result[1])
    rouge, rouge_per_video = Rouge().compute_score(gts, res)
    scores["ROUGE-L"] = float(rouge)
    _add_per_video(per_video, ids, "ROUGE-L", rouge_per_video)
    cider, cider_per_video = Cider().compute_score(gts, res)
    scores["CIDEr"] = float(cider)
    _add_per_video(per_video, ids, "CIDEr", cider_per_video)
    ordered = {name: scores[name] for name in METRIC_NAMES if name in scores}
    return CaptionScores(scores=ordered, per_video=per_video, tokenizer=used, skipped=skipped)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def _check_inputs(
    references: Mapping[str, Sequence[str]], candidates: Mapping[str, str]
) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    for name, value in (("references", references), ("candidates", candidates)):
        if not isinstance(value, Mapping):
            raise ValueError(
                f"score_captions: {name} must be a mapping video id -> captions, got {_kind(value)}"
            )
    if not references:
        raise ValueError("score_captions: expected at least one video, got empty references")
    ids = list(references)
    missing = [video_id for video_id in ids if video_id not in candidates]
    extra = [video_id for video_id in candidates if video_id not in references]
    if missing or extra:
        raise ValueError(
            "score_captions: candidates must have the video ids of references, got "
            f"{len(missing)} missing {missing[:_SHOWN]} and {len(extra)} extra {extra[:_SHOWN]}"
        )
    refs: dict[str, list[str]] = {}
    for video_id, captions in references.items():
        if isinstance(captions, str) or not isinstance(captions, Sequence):
            raise ValueError(
                f"score_captions: references[{video_id!r}] must be a list of captions, got {_kind(captions)}"
            )
        if not captions:
            raise ValueError(
                f"score_captions: references[{video_id!r}]: expected at least one caption, got none"
            )
        for index, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise ValueError(
                    f"score_captions: references[{video_id!r}][{index}] must be a str, got {_kind(caption)}"
                )
        refs[video_id] = list(captions)
    cands: dict[str, str] = {}
    for video_id in ids:
        caption = candidates[video_id]
        if not isinstance(caption, str):
            raise ValueError(f"score_captions: candidates[{video_id!r}] must be a str, got {_kind(caption)}")
        cands[video_id] = caption
    return ids, refs, cands


def _kind(value: object) -> str:
    return "a str" if isinstance(value, str) else f"{type(value).__name__} {value!r:.40}"


# --------------------------------------------------------------------------------------------------
# Tokenisation
# --------------------------------------------------------------------------------------------------


def _tokenize(
    ids: list[str], refs: dict[str, list[str]], cands: dict[str, str], tokenizer: str
) -> tuple[dict[str, list[str]], dict[str, list[str]], str]:
    """``(gts, res, tokenizer used)``: the tokenised references and candidates, keyed by video id."""
    # references then candidates, in one list: one Java start for all of them
    raw = [caption for video_id in ids for caption in refs[video_id]] + [cands[video_id] for video_id in ids]
    tokens: list[str] | None = None
    if tokenizer == "ptb":
        try:
            tokens = _ptb_tokenize_java(raw)
        except Exception as exc:  # a read-only package folder, a JVM that dies, lines out of step
            logger.warning(
                "pycocoevalcap's Java PTB tokenizer failed (%s: %s): the captions are tokenised with the "
                "Python PTB tokenizer instead",
                type(exc).__name__,
                exc,
            )
            tokenizer = "python"
    if tokens is None:
        tokens = [ptb_tokenize_python(caption) for caption in raw]
    gts: dict[str, list[str]] = {}
    position = 0
    for video_id in ids:
        gts[video_id] = tokens[position : position + len(refs[video_id])]
        position += len(refs[video_id])
    res = {video_id: [tokens[position + index]] for index, video_id in enumerate(ids)}
    return gts, res, tokenizer


@contextlib.contextmanager
def _child_stderr_held() -> Iterator[None]:
    """File descriptor 2 (what child processes such as Java inherit) goes to a temporary file while the
    block runs; what was written there is shown on the real stderr only when the block fails."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (an embedding host): nothing to hold
        yield
        return
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            file.seek(0)
            sys.stderr.write(file.read().decode(errors="replace"))
            sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _ptb_tokenize_java(captions: list[str]) -> list[str]:
    """``captions`` tokenised by pycocoevalcap's PTBTokenizer in one Java run; blank ones are not sent."""
    lines = [_LINE_BREAKS.sub(" ", caption) for caption in captions]
    sent = [index for index, line in enumerate(lines) if line.strip()]
    # keys are positions in `sent`; the sentinel comes last
    payload = {key: [{"caption": lines[index]}] for key, index in enumerate(sent)}
    payload[len(sent)] = [{"caption": _SENTINEL}]
    # the Java tokenizer prints "PTBTokenizer tokenized N tokens at ..." on the stderr it inherits: kept
    # out of the command's output, shown only when the tokenizer fails
    with _child_stderr_held():
        output: dict[int, list[str]] = PTBTokenizer().tokenize(payload)
    if len(output) != len(payload) or output[len(sent)] != [_SENTINEL]:
        raise RuntimeError(
            f"expected {len(payload)} tokenised lines ending with {_SENTINEL!r}, got {len(output)} lines "
            f"ending with {output.get(len(sent))!r}"
        )
    tokens = [""] * len(captions)
    for key, index in enumerate(sent):
        tokens[index] = output[key][0]
    return tokens


# --------------------------------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------------------------------


def _add_per_video(per_video: dict[str, dict[str, float]], ids: list[str], name: str, values: Any) -> None:
    if len(values) != len(ids):
        raise RuntimeError(f"{name}: expected {len(ids)} per-video scores, got {len(values)}")
    for video_id, value in zip(ids, values):
        per_video[video_id][name] = float(value)


def _start_meteor(skipped: dict[str, str]) -> Meteor | None:
    try:
        return Meteor()
    except OSError as exc:
        skipped["METEOR"] = f"METEOR did not start: {type(exc).__name__}: {exc}"
        logger.warning("METEOR is skipped: %s", skipped["METEOR"])
        return None


def _meteor_text(caption: str) -> str:
    # METEOR reads one line per request with ' ||| ' between fields: a newline or '|||' inside a
    # caption puts its Java process out of step (it then waits for input that never comes).
    return " ".join(_LINE_BREAKS.sub(" ", caption).replace("|||", " ").split())


def _run_meteor(
    scorer: Meteor, gts: dict[str, list[str]], res: dict[str, list[str]], skipped: dict[str, str]
) -> tuple[float, list[float]] | None:
    """``(corpus METEOR, per-video METEOR)``, or None (with ``skipped["METEOR"]`` and a WARNING) when
    METEOR fails or does not answer within the time limit (its process is then killed)."""
    meteor_gts = {
        video_id: [_meteor_text(caption) for caption in captions] for video_id, captions in gts.items()
    }
    meteor_res = {
        video_id: [_meteor_text(caption) for caption in captions] for video_id, captions in res.items()
    }
    timeout = _METEOR_TIMEOUT_S + _METEOR_TIMEOUT_PER_VIDEO_S * len(gts)
    watchdog = threading.Timer(timeout, scorer.meteor_p.kill)  # a dead process ends the blocking reads
    watchdog.start()
    try:
        score, per_video = scorer.compute_score(meteor_gts, meteor_res)
    except (OSError, ValueError) as exc:
        reason = "timed out" if not watchdog.is_alive() else f"{type(exc).__name__}: {exc}"
        skipped["METEOR"] = f"METEOR failed: {reason}"
        logger.warning("METEOR is skipped: %s", skipped["METEOR"])
        return None
    finally:
        watchdog.cancel()
    return float(score), [float(value) for value in per_video]


def _close_meteor(scorer: Meteor) -> None:
    """Stop METEOR's Java process and close its pipes now rather than when the scorer is collected."""
    process = scorer.meteor_p
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    process.kill()
    process.wait()
    # compute_score leaves the lock held when it fails part-way; Meteor.__del__ takes it again
    if scorer.lock.locked():
        scorer.lock.release()
