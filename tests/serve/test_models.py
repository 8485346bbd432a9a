"""What the server offers per model: cards, names, examples from the run's own data, the computations
behind each view, and the view registry a new kind plugs into."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.serve import work
from gankit.serve.catalog import ServedModel, format_metric, headline_metrics, load_models, write_examples
from gankit.serve.errors import Unprocessable
from gankit.serve.views import (
    DigitClassifierView,
    DigitGridView,
    SamplesView,
    TranslationView,
    View,
    register_view,
    view_for,
)


@pytest.fixture(scope="module")
def served(runs):
    return {m.name: m for m in load_models([str(runs[k]) for k in ("a2o", "oneway", "cgan", "sgan", "progan")], "cpu")}


def test_cards_say_what_each_model_is(served, runs):
    card = served["a2o"].card
    assert (card.kind, card.data, card.size, card.steps, card.planned) == ("cyclegan", "apple2orange", 32, 1234, False)
    assert card.metrics == {"success_a2b": 0.8125, "fid_cls_a2b": 12.5}
    assert card.report == runs["a2o"] / "eval" / "report.json"
    text = card.markdown("a2o")
    assert (
        "cyclegan" in text and "1,234" in text and "| success_a2b | A→B translations classified as B | 0.8125 |" in text
    )
    assert served["oneway"].card.planned and "(planned)" in served["oneway"].card.markdown("oneway")
    assert "No evaluation report" in served["oneway"].card.markdown("oneway")
    assert (served["cgan"].card.size, served["cgan"].card.data) == (28, "mnist")
    assert served["oneway"].directions == ("a2b",) and served["cgan"].directions == ()
    assert format_metric([0.12345, float("nan")]) == "[0.1235, n/a]"
    many = {f"extra_{i}": i for i in range(30)} | {"success_a2b": 0.5, "content_a2b_ci": [0.1, 0.2]}
    assert headline_metrics(many) == {"success_a2b": 0.5}  # the described figures, not intervals or extras


def test_models_are_named_after_their_run_and_numbered_when_two_share_it(runs):
    named = load_models([str(runs["a2o"]), str(runs["a2o"] / "model.safetensors")], "cpu")
    assert [m.name for m in named] == ["a2o", "a2o-2"]
    assert named[1].card.steps == 1234  # the run's summary, found from its model file


def test_examples_come_from_the_runs_own_data(served, shared_data, tmp_path):
    a2o = ServedModel("a2o", served["a2o"].source, served["a2o"].model, served["a2o"].card)
    write_examples(a2o, 2, tmp_path)
    assert sorted(a2o.examples) == ["a2b", "b2a"] and all(len(v) == 2 for v in a2o.examples.values())
    test_a = {
        np.asarray(Image.open(p).convert("RGB")).tobytes() for p in (shared_data / "apple2orange/testA").iterdir()
    }
    assert all(np.asarray(Image.open(p)).tobytes() in test_a for p in a2o.examples["a2b"])
    assert all(p.is_relative_to(tmp_path) and p.suffix == ".png" for p in a2o.examples["b2a"])
    sgan = ServedModel("sgan", served["sgan"].source, served["sgan"].model, served["sgan"].card)
    write_examples(sgan, 3, tmp_path)
    assert [Image.open(p).size for p in sgan.examples["input"]] == [(28, 28)] * 3
    warnings = []
    missing = ServedModel("x", served["a2o"].source, served["a2o"].model, served["a2o"].card)
    missing.model.config.data_root = str(tmp_path / "nowhere")
    try:
        write_examples(missing, 2, tmp_path, warnings.append)
    finally:
        missing.model.config.data_root = str(shared_data)
    assert missing.examples == {} and "no example images" in warnings[0]


def test_translation_tiles_like_translate_and_matches_one_piece(served):
    model = served["a2o"].model
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 230, 3), dtype=np.uint8))
    whole = work.translate(model, image, "a2b", roundtrip=True)
    assert whole.tile == 0 and whole.image.size == (230, 150) and whole.roundtrip.size == (230, 150)
    tiled = work.translate(model, image, "a2b", roundtrip=True, max_memory=200_000)  # forces tiles
    assert tiled.tile > 0
    diff = np.abs(np.asarray(tiled.image, np.int16) - np.asarray(whole.image, np.int16)).max()
    assert diff <= 1  # whole-image statistics: no seams, the same picture within 1/255
    with pytest.raises(Unprocessable, match="a2b only"):
        work.translate(served["oneway"].model, image, "b2a")
    one = work.translate(served["oneway"].model, image, "a2b", roundtrip=True)
    assert one.roundtrip is None and one.image.size == (230, 150)


def test_companion_computations(served):
    grid = work.digit_grid(served["cgan"].model, 3, n=4)
    assert grid.mode == "RGB" and grid.width >= 56
    with pytest.raises(Unprocessable, match="0–9"):
        work.digit_grid(served["cgan"].model, 12)
    probs = work.classify_digit(served["sgan"].model, Image.new("L", (28, 28)))
    assert sorted(probs) == [str(d) for d in range(10)] and abs(sum(probs.values()) - 1) < 1e-5
    strip = work.interpolation_strip(served["progan"].model, steps=5)
    assert strip.width > 4 * strip.height  # one row
    assert work.samples(served["progan"].model, n=4).size[0] > 0


def test_uploaded_digits_take_mnists_form():
    drawing = Image.new("L", (200, 100), 255)  # a dark stroke on white paper, off-centre
    drawing.paste(0, (150, 10, 170, 90))
    x = work.digit_tensor(drawing)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.uint8
    rows, _ = torch.nonzero(x[0, 0] > 128, as_tuple=True)
    assert rows.max() - rows.min() + 1 <= 20 and abs((rows.float().mean() - 13.5).item()) < 1.5  # boxed, centred
    mnist_like = Image.fromarray(np.pad(np.full((10, 4), 255, np.uint8), ((9, 9), (12, 12))))
    assert torch.equal(work.digit_tensor(mnist_like)[0, 0], torch.from_numpy(np.array(mnist_like)))


def test_each_kind_gets_its_view_and_a_new_kind_plugs_in_without_touching_the_core(served):
    assert isinstance(view_for(served["a2o"]), TranslationView)
    assert isinstance(view_for(served["oneway"]), TranslationView)
    assert isinstance(view_for(served["cgan"]), DigitGridView)
    assert isinstance(view_for(served["sgan"]), DigitClassifierView)
    assert isinstance(view_for(served["progan"]), SamplesView)

    from gankit.serve import views

    @register_view
    class SeveralSamples(View):  # e.g. an augmented CycleGAN: several translations per input
        @classmethod
        def applies(cls, s):
            return s.kind == "cyclegan" and s.name == "a2o"

    try:
        assert isinstance(view_for(served["a2o"]), SeveralSamples)
        assert isinstance(view_for(served["oneway"]), TranslationView)
    finally:
        views._VIEWS.remove(SeveralSamples)
