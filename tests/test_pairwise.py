"""The fused pairwise-MLP kernel (CE-GZSL's comparator) against its definition: values and
closed-form gradients, on both backends, with and without a leading seed axis."""

from __future__ import annotations

import logging

import pytest
import torch

from unseen.models import pairwise
from unseen.models.pairwise import pair_mlp_scores, pair_mlp_scores_reference


@pytest.fixture(params=["eager", "compile"])
def backend(request, monkeypatch):
    monkeypatch.setattr(pairwise, "BACKEND", request.param)
    monkeypatch.setattr(pairwise, "_compiled", {})
    return request.param


def _inputs(lead: tuple[int, ...], n=5, k=4, h=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    make = lambda *s: torch.randn(*lead, *s, generator=g, dtype=dtype, requires_grad=True)  # noqa: E731
    return make(n, h), make(k, h), make(h)


@pytest.mark.parametrize("lead", [(), (3,)])
def test_scores_and_gradients_equal_autograd_through_the_broadcast(backend, lead):
    u, v, w = _inputs(lead)
    upstream = torch.randn(*lead, 5, 4, dtype=torch.float64)
    got = pair_mlp_scores(u, v, w, 0.2)
    grads = torch.autograd.grad((got * upstream).sum(), (u, v, w))
    want = pair_mlp_scores_reference(u, v, w, 0.2)
    want_grads = torch.autograd.grad((want * upstream).sum(), (u, v, w))
    torch.testing.assert_close(got, want)
    for a, b in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_gradcheck_of_the_chunked_kernel(monkeypatch):
    monkeypatch.setattr(pairwise, "BACKEND", "eager")
    # chunks of one row, so the chunk loop and its accumulation are exercised
    monkeypatch.setattr(pairwise, "_CHUNK_VALUES", 1)
    u, v, w = _inputs(())
    assert torch.autograd.gradcheck(lambda *t: pair_mlp_scores(*t, 0.2), (u, v, w))


def test_low_precision_inputs_are_scored_in_fp32():
    u, v, w = (t.detach().to(torch.bfloat16) for t in _inputs(()))
    out = pair_mlp_scores(u, v, w, 0.2)
    assert out.dtype == torch.float32
    want = pair_mlp_scores_reference(u.float(), v.float(), w.float(), 0.2)
    torch.testing.assert_close(out, want)


def test_a_failed_compilation_falls_back_to_the_chunked_kernel(monkeypatch, caplog):
    monkeypatch.setattr(pairwise, "BACKEND", "auto")

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(pairwise, "_compiled", {"forward": broken, "backward": broken})
    u, v, w = _inputs(())
    with caplog.at_level(logging.WARNING, logger="unseen.models.pairwise"):
        out = pair_mlp_scores(u, v, w, 0.2)
    assert "chunked eager kernel" in caplog.text
    torch.testing.assert_close(out, pair_mlp_scores_reference(u, v, w, 0.2))
    assert pairwise._compiled.get("failed")


def test_compile_backend_raises_instead_of_falling_back(monkeypatch):
    monkeypatch.setattr(pairwise, "BACKEND", "compile")

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(pairwise, "_compiled", {"forward": broken, "backward": broken})
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        pair_mlp_scores(*_inputs(()), 0.2)


def test_a_dispatch_mode_never_reaches_the_compiled_kernels(monkeypatch):
    # a compiled function first entered under a dispatch mode (FlopCounterMode, a tracer)
    # stays on the eager broadcast for the rest of the process; under a mode the chunked
    # kernel runs instead, and the compiled ones are not called
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setattr(pairwise, "BACKEND", "auto")
    called = []

    def spy(*args, **kwargs):
        called.append(1)
        raise AssertionError("compiled kernel entered under a dispatch mode")

    monkeypatch.setattr(pairwise, "_compiled", {"forward": spy, "backward": spy})
    u, v, w = _inputs(())
    with FlopCounterMode(display=False):
        out = pair_mlp_scores(u, v, w, 0.2)
        out.sum().backward()
    assert not called and not pairwise._compiled.get("failed")
    torch.testing.assert_close(out, pair_mlp_scores_reference(u, v, w, 0.2))
